#pragma once
// Progress of a scoring run drawn from the run itself: an observer on hook_embed sees every forward's
// RunInfo (stream and absolute position of each row), so any command that scores through score_bits,
// score_bits_rolling or segmented_token_bits can show "tokens done / total" without a callback of its own.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "experiments/support/common.h"
#include "model/core/hooks.h"

namespace ccc::experiments {

class RunProgress {
 public:
  /// `total` = tokens the run will score (all streams); silent unless stderr is a terminal and `enabled`.
  RunProgress(std::string what, int64_t total, bool enabled);
  /// Adds the observer to `hs` at `site` (read-only, never changes a number): hook_embed, or the first
  /// hook a run sees when it starts from a later site (blocks.0.hook_resid_pre for forward_from(…, 0)).
  void attach(model::HookSet& hs, const std::string& site = "hook_embed");
  /// Draws the final line (done = total) if anything was shown.
  void finish();

 private:
  ProgressLine line_;
  int64_t total_;
  std::mutex mu_;
  std::map<int64_t, int64_t> next_;  // stream -> 1 + highest position seen
  int64_t done_ = 0;
};

/// Escapes bytes for JSON and terminals: printable ASCII as is, \n \t \r \\ \" and \xNN otherwise.
std::string escape_bytes(std::string_view bytes);

}  // namespace ccc::experiments
