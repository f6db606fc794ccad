#pragma once
// Activation capture during a compression run: the encoder's model calls carry observers on the chosen
// hook points, and every fed position becomes one row of an HDF5 file next to the exact bits its token
// cost. Layout (rows ordered by stream, then position; N = Σ over streams of (coded tokens + 1)):
//   tokens int32 [N], stream int32 [N], pos int64 [N] (BOS = 0), byte_offset int64 [N] (−1 for BOS),
//   bits float32 [N] (−log2 p of the row's token given the earlier tokens of its stream; NaN for BOS),
//   acts/<hook name> [N, ...] (the activation at that position; hook_pattern / hook_attn_scores on the
//   rolling cache: [N, n_heads, W], one column per cache slot), key_pos int64 [N, W] (the model position
//   of the key in each slot, −1 = empty; present when a pattern or score hook is captured),
//   root attributes fingerprint, config, source, source_sha256, n_bytes, streams, window, policy, dtype,
//   compression, ccc_version, command.
// Memory is bounded by the stream count, not the input length: each group buffers a block of positions
// per stream and writes it as contiguous row ranges.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/h5_rows.h"
#include "model/formats/loader.h"
#include "model/scoring/streams.h"

namespace ccc::analysis {

struct CaptureOptions {
  std::string out;                  ///< the .h5 file
  std::vector<std::string> hooks;   ///< hook names or globs (each must match at least one hook)
  Dtype dtype = Dtype::kF16;        ///< activations: kF16 or kF32
  Compression compression = Compression::kNone;
  bool force = false;               ///< replace an existing output
  int64_t buffer_bytes = int64_t{64} << 20;  ///< budget of the per-group position blocks
  std::string source;               ///< input path (attribute)
  std::string command;              ///< command line (attribute)
  /// Under mpirun: every rank writes the rows of the stream groups it runs (CodecOptions::distribute) into
  /// the one file (parallel HDF5); rows, bytes and bits are summed over ranks at finish().
  bool shared = false;
};

/// The hook names of `m` matched by `patterns` (registry order); a pattern matching nothing is an error.
std::vector<std::string> resolve_hooks(const model::LoadedModel& m, const std::vector<std::string>& patterns);

class ActivationCapture {
 public:
  /// Prepares the file for a run of `m` over `input` with the segmentation and window policy of `run`
  /// (as lm_compress will use them). Throws before creating anything on a bad hook pattern.
  ActivationCapture(model::LoadedModel& m, std::string_view input, const model::StreamOptions& run,
                    CaptureOptions opt);
  ~ActivationCapture();
  /// Installs hooks on `run` and callbacks on `observers` (the same compress::CodecOptions in a codec run,
  /// which must then drive exactly one lm_compress of the input; they refer to this object, so they must
  /// not be used after it is destroyed). `edits`, when set, is called on each stream group's hook set
  /// before the capture's observers are added: an edited (e.g. ablated) model is dumped as it runs, each
  /// hooked site recorded after its edits.
  void attach(model::StreamOptions& run, model::FeedObservers& observers,
              const std::function<void(model::HookSet&)>& edits = {});
  /// Writes the remaining rows and the attributes, then publishes the file.
  void finish();
  int64_t rows() const;
  /// Bytes the run will hand to HDF5 (rows × every field's row size; before any compression): known at
  /// construction, before anything is written.
  int64_t expected_bytes() const;
  int64_t bytes_written() const;     ///< activation and metadata bytes handed to HDF5
  double total_bits() const;         ///< Σ bits over the rows

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace ccc::analysis
