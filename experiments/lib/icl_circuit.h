#pragma once
// The `icl` experiment: which circuit wins as the context grows? Windows of T tokens of held-out text (and
// spans repeated back to back, [BOS, s, s]) scored clean, with the induction heads ablated (the heads the
// independent [BOS, r, r] detector scores highest: induction >= half the best, at most `max_heads`), and with
// as many top MLPs ablated (the MLPs after the first whose ablation costs most on the windows; the first MLP
// is part of the embedding). Per position p: what each set carries, Δ_set(p) = bits(p | set ablated) −
// bits(p | clean), averaged over windows in log-spaced position bins (the plot); the crossover is the first position from
// which the induction heads carry at least as much as the MLPs (blocks of 8 positions; on the windows and on
// the repeated spans, where it is expected just after the first copy). The ICL score (Olsson et al. 2022) is the
// mean bits of tokens near a late position minus near an early one (negative: the context helps); the
// induction heads' share of it is the score's rise when they are ablated, against random head sets of the
// same size (the null).

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "circuits/ablation.h"
#include "experiments/lib/result.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct IclCircuitOptions {
  int64_t windows = 64;        ///< windows of held-out text (and as many repeated spans)
  int64_t window_len = 512;    ///< T tokens after BOS (capped by the model's context)
  int64_t early = 50, late = 500, band = 5;  ///< ICL score positions (late capped by the window)
  int64_t span = 200;          ///< bytes of a repeated span (capped so [BOS, s, s] fits)
  int64_t max_heads = 4;
  int64_t null_draws = 20;     ///< random head sets of the null
  circuits::Mode mode = circuits::Mode::kMean;
  uint64_t seed = 0;
  int64_t resamples = 2000;
  int64_t max_rows = 64;
  /// Byte labels (domain:<d> ranges): windows are spread over the labels' ranges in turn.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> byte_labels;
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

struct IclCircuitDetail {
  std::vector<std::string> induction_heads, mlps;
  std::vector<double> induction_scores;  ///< the detector's score of each induction head
  std::vector<int64_t> bin_start;        ///< position bins [bin_start[i], bin_start[i + 1])
  /// Mean bits per token per bin: clean, induction heads ablated, MLPs ablated; and the null's mean.
  std::vector<double> bits_clean, bits_induction, bits_mlps, bits_null;
  /// Repeated spans: mean bits per byte of the first and second copy, per condition (clean, induction,
  /// MLPs, null mean).
  double first_copy[4] = {0, 0, 0, 0}, second_copy[4] = {0, 0, 0, 0};
  /// Repeated spans [BOS, s, s]: mean bits per position (2·span entries) clean, induction heads ablated, MLPs
  /// ablated (empty for an attention-only model).
  std::vector<double> repeated_clean, repeated_induction, repeated_mlps;
  int64_t span = 0;
  std::vector<std::string> window_labels;  ///< the label of each window
  int64_t window_len = 0;
};

/// Runs the experiment on `text` (the caller fills model / input identity). Throws ccc::Error when the text
/// holds no window of window_len bytes, or the model has no head the detector calls induction.
Result run_icl_circuit(model::LoadedModel& m, std::string_view text, const IclCircuitOptions& o,
                       IclCircuitDetail* detail = nullptr);

}  // namespace ccc::experiments
