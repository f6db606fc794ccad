#pragma once
// The `competition` experiment of the Circuit Competition Conjecture: on natural text, does one component
// decide each token (a clear winner), more often than chance coupling would make one? Every head and MLP
// is a candidate; Δ[t, c] is the bits token t costs more with candidate c ablated alone (mean ablation by
// default: zeroing the first MLP breaks what the embedding alone cannot do). Per token:
//   winner     the candidate whose ablation costs most;
//   dominance  max_c Δ⁺[t, c] / Σ_c Δ⁺[t, c]  (Δ⁺ = max(Δ, 0); tokens with Σ = 0 have none).
// Null: each candidate's column permuted across tokens independently (the same marginals, no per-token
// coupling). Also the mutual information between the winner and the token's character class (repeated
// span, newline, space, digit, …) against the same with the classes shuffled in blocks, the components'
// shares of the wins, and pair interactions I(A, B) = Δ(A ∪ B) − Δ(A) − Δ(B) among the top components
// (I > 0: redundancy, a backup takes over; I < 0: interference) against random pairs.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/ablation.h"
#include "experiments/lib/result.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct CompetitionOptions {
  circuits::Mode mode = circuits::Mode::kMean;  ///< mean (reference: the text itself) or zero
  int64_t streams = 0, window = 0;              ///< the compressor's segmentation (0 = automatic)
  uint64_t seed = 0;
  int64_t null_draws = 20;   ///< column-permutation draws of the dominance null
  int64_t pair_top = 6;      ///< pairs among this many top components (by mean Δ), and as many random pairs
  int64_t resamples = 2000;  ///< bootstrap resamples of every CI
  std::vector<circuits::Component> extra;  ///< more candidates (a --circuit)
  /// Components also scored one run each (the unbatched way), timed beside the batched sweep: the speed-up
  /// and the largest per-token difference between the two (0 = no comparison).
  int64_t naive_sample = 2;
  /// Byte labels of the text (name, one flag per byte; e.g. domain:code ranges of a held-out mix): the
  /// winners table names, per component, the label its wins are most enriched in.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> byte_labels;
  /// Progress: `phase` ("ablations", "pairs"), units done of total.
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

/// What the renderers need beyond the Result: per token and per component.
struct CompetitionDetail {
  std::vector<std::string> candidates;
  std::vector<int64_t> byte_offset;     ///< per coded token
  std::vector<int> winner;              ///< per token: candidate index, −1 = no positive Δ
  std::vector<double> dominance;        ///< per token (NaN when no winner)
  std::vector<double> null_dominance;   ///< the first null draw's per-token dominance
  std::vector<std::string> token_class; ///< per token: its character class
  struct Winner {
    std::string component;
    double share_of_tokens = 0;  ///< share of the tokens with a winner
    double mean_delta_bits = 0;  ///< mean Δ over all tokens
    std::string top_feature;     ///< the class or label its wins are most enriched in (lift)
    double lift = 0;
  };
  std::vector<Winner> winners;  ///< every candidate, most wins first
  struct Pair {
    std::string a, b;
    bool random = false;  ///< a random pair (the reference), not one of the top components
    double interaction_bits = 0, ci_low = 0, ci_high = 0;
  };
  std::vector<Pair> pairs;
  /// The batched sweep's wall time against one run per component (naive_sample of them timed, the rest
  /// extrapolated), and the largest |Δ bits| of any token between the two ways.
  double sweep_seconds = 0, naive_seconds_per_component = 0, naive_max_abs_diff = 0;
  double speedup = 0;  ///< naive_seconds_per_component × candidates / sweep_seconds
  int64_t naive_sample = 0;
};

/// Runs the experiment on `text` (its hypothesis, measurements, nulls and verdict in the Result; the
/// caller fills model / input identity). Throws ccc::Error for a text too short to have a winner.
Result run_competition(model::LoadedModel& m, std::string_view text, const CompetitionOptions& o,
                       CompetitionDetail* detail = nullptr);

/// Dominance of each row of Δ (rows = tokens, columns = candidates): max⁺ / Σ⁺, NaN when Σ⁺ = 0; `winner`
/// receives the argmax (−1 when Σ⁺ = 0). Exposed for tests.
std::vector<double> dominance_of(const std::vector<std::vector<double>>& delta, std::vector<int>* winner = nullptr);

/// Plug-in mutual information in bits between two categorical sequences of equal length (entries < 0 of
/// `a` are left out).
double mutual_information_bits(const std::vector<int>& a, const std::vector<int>& b);

}  // namespace ccc::experiments
