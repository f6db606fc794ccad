#pragma once
// In-context learning measured in bits: the cost of the second copy of a repeated span against the first
// (text and random strings), and the ICL score of Olsson et al. 2022 (mean bits of a late token position
// minus an early one over windows of real text). Scores on the full-sequence path (score_bits).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/formats/loader.h"

namespace ccc::circuits {

/// A named text to draw spans and windows from (a held-out corpus split or a user's file).
using Source = std::pair<std::string, std::string>;  // name, bytes

struct IclOptions {
  int64_t span_len = 200;      ///< bytes per repeated text span
  int64_t spans = 8;           ///< spans per source (evenly spaced)
  int64_t random_len = 50;     ///< bytes per repeated random printable string
  int64_t random_spans = 16;
  int64_t early = 50, late = 500;  ///< ICL score positions (tokens after BOS); late is capped by the context
  int64_t band = 5;            ///< positions p − band .. p + band − 1 are averaged at each end
  int64_t windows = 256;       ///< ICL windows in all, exactly (split evenly over the sources that hold one)
  uint64_t seed = 0;
};

/// Bits of the first and second copy of spans repeated back to back: [BOS, s, s].
struct RepeatBits {
  int64_t spans = 0, bytes = 0;      ///< spans scored; bytes of one copy, summed over spans
  double first_bpb = 0, second_bpb = 0;
};

/// Scores [BOS, enc(s), enc(s)] for each span with the model's window policy (score_bits).
RepeatBits repeated_span_bits(model::LoadedModel& m, const std::vector<std::string>& spans);

/// `count` spans of `len` bytes evenly spaced over `text` (fewer when the text is short).
std::vector<std::string> even_spans(const std::string& text, int64_t len, int64_t count);
/// `count` seeded strings of `len` random printable bytes (32..126).
std::vector<std::string> random_printable(int64_t len, int64_t count, uint64_t seed);

/// A matched pair of probe texts for copying (induction) experiments: `repeated` holds `count` lines
/// "s s\n" (a random printable string, then the same string again), `fresh` the same lines with the second
/// half replaced by another random string of the same length ("s t\n", t ≠ s): same lengths, same first
/// halves, no repeat — the reference of a resample ablation; `corrupt` the lines "t s\n": the first copy
/// replaced, the second (the copy the task prices) kept — the corrupt input of paired patching, where the
/// positions of `repeated`'s second copies read the same tokens in both texts and only the context
/// differs. Seeded; byte offsets of the second halves are line·(2·len + 1) + len.
struct ProbeTexts {
  std::string repeated, fresh, corrupt;
};
ProbeTexts make_probe(int64_t len, int64_t count, uint64_t seed);

struct IclReport {
  std::vector<std::pair<std::string, RepeatBits>> text;  ///< per source
  RepeatBits text_all, random;
  int64_t early = 0, late = 0, windows = 0;
  double early_bits = 0, late_bits = 0;  ///< mean bits per token in the bands
  double icl_score = 0;                  ///< late_bits − early_bits (Olsson et al. 2022; negative = learns in context)
  double icl_ci_low = 0, icl_ci_high = 0;  ///< its 95% bootstrap CI over the windows (2000 resamples, seeded)
  std::vector<double> curve;             ///< mean bits of the token at position 1 .. len (index 0 = position 1)
  nlohmann::json to_json() const;
};

IclReport measure_icl(model::LoadedModel& m, const std::vector<Source>& sources, const IclOptions& o);

}  // namespace ccc::circuits
