#pragma once
// The `copy-vs-recall` experiment (after Ortu et al. 2024, "Competition of Mechanisms", priced in bits):
// a byte model predicts some bytes from its weights alone; plant a counterfactual copy in the context and
// the copy mechanism and the recall mechanism want different bytes. Which wins, and which components
// fight on each side?
//
//   positions  N places i of the input where the model, reading only the S bytes P = text[i−S, i) after
//              BOS, gives the true byte b = text[i] p ≥ min_p, and P's last `novelty` bytes occur nowhere
//              earlier in the input's preceding 1 KB (an in-weights prediction, not a copy).
//   prompt(k)  [BOS] (P b′ F_1) … (P b′ F_k) P — k planted copies of the span ending in the counterfactual
//              b′ ≠ b (seeded, same character class as b), each followed by F bytes of filler drawn from
//              the input; the query is the final P. All prompts of one k have one length (one batch).
//   measured   bits of b and of b′ at the query; win = b′ costs fewer bits than b.
//   sides      each head's and MLP's direct contribution to logit(b′) − logit(b) at the query (through
//              the unembedding, the final norm's scale frozen at its clean value): > 0 copy, < 0 recall.
//              Σ over the heads, MLPs, embedding and attention-output biases, plus the final norm's bias
//              term, is the logit difference exactly.
//   decisive   the top copy components ablated together (and separately the top recall ones) at every
//              k, against random component sets of the same size (the null); the dose–response scales
//              either side's outputs by α. The first MLP is part of the embedding for the sets (see
//              first_mlp_as_embedding).

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

struct CopyRecallOptions {
  int64_t positions = 64;   ///< N
  int64_t span = 24;        ///< S: bytes of the query span
  int64_t filler = 16;      ///< F: filler bytes after each planted copy
  int64_t novelty = 8;      ///< the span's last bytes that must not occur earlier
  double min_p = 0.9;       ///< the in-weights prediction's probability at k = 0
  std::vector<int64_t> repeats = {0, 1, 2, 4, 8};
  int64_t side_k = 1;       ///< k at which the sides (direct attributions, single ablations) are measured
  int64_t top = 3;          ///< components per side removed by the interventions
  int64_t null_draws = 100;
  std::vector<double> alphas = {0, 0.25, 0.5, 1, 1.5, 2};
  circuits::Mode mode = circuits::Mode::kMean;  ///< zero, mean or resample (reference: the input)
  /// The first MLP counts as part of the embedding (as in GPT-2, it turns the token into what every later
  /// component reads; removing it breaks copy and recall alike): it is attributed and ablated alone like
  /// every component, but never in a side's set nor in a null draw.
  bool first_mlp_as_embedding = true;
  uint64_t seed = 0;
  int64_t resamples = 2000;
  int64_t max_rows = 128;   ///< batch rows per forward
  /// Byte labels of the input (domain:<d> ranges of a held-out mix): positions are drawn from each label
  /// in turn and the win rates reported per label.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> byte_labels;
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

struct CopyRecallDetail {
  struct Position {
    int64_t offset = 0;          ///< i: the predicted byte's offset in the input
    uint8_t fact = 0, counterfactual = 0;
    std::string label;           ///< its byte label ("" without labels)
    std::vector<double> bits_fact, bits_cf;  ///< per k (clean)
  };
  std::vector<Position> positions;
  std::vector<int64_t> repeats;
  struct ComponentRow {
    std::string component, side;  ///< side: copy | recall
    double logit_diff = 0;        ///< mean direct contribution to logit(b′) − logit(b) at side_k, nats
    double win_rate_ablated = 0;  ///< at side_k, this component alone ablated
  };
  std::vector<ComponentRow> components;  ///< every head and MLP, by logit_diff, most copying first
  std::vector<std::string> copy_components, recall_components;
  /// The rest of the logit difference at side_k (mean over positions): embedding, attention-output biases,
  /// the final norm's bias term; and the mean logit difference itself.
  double dla_embedding = 0, dla_attn_bias = 0, dla_norm_bias = 0, logit_diff = 0;
  /// Win rates per k: clean, copy side ablated, recall side ablated, and the null draws' per-k win rates.
  std::vector<double> win_clean, win_copy_ablated, win_recall_ablated;
  std::vector<std::vector<double>> null_win;  ///< [draw][k]
  /// Dose–response: win rate [alpha][k] with the copy side's (and the recall side's) outputs scaled.
  std::vector<double> alphas;
  std::vector<std::vector<double>> dose_copy, dose_recall;
  /// Per label: the clean win rate per k.
  std::vector<std::pair<std::string, std::vector<double>>> win_by_label;
  int64_t candidates_scanned = 0;  ///< positions whose k = 0 prompt was scored while selecting
};

/// Runs the experiment on `text` (a byte-level model; the caller fills model / input identity in the
/// Result). Throws ccc::Error for a model that is not byte-level, prompts longer than its context, or an
/// input without N qualifying positions.
Result run_copy_vs_recall(model::LoadedModel& m, std::string_view text, const CopyRecallOptions& o,
                          CopyRecallDetail* detail = nullptr);

/// Direct logit attribution at the last position of `tokens` [N, T] toward logit(target) − logit(other)
/// (per row): each component's contribution (`components` order, heads and MLPs) [N, C], the rest
/// (embedding, attention-output biases, final-norm bias) [N, 3], and the logit differences [N], all in
/// nats of logit. rest and contributions sum to the difference (up to float rounding). Exposed for tests.
struct DirectLogits {
  std::vector<std::vector<double>> per_component, rest;
  std::vector<double> logit_diff;
};
DirectLogits direct_logit_attribution(model::LoadedModel& m, const std::vector<std::vector<int64_t>>& tokens,
                                      const std::vector<circuits::Component>& components,
                                      const std::vector<int64_t>& target, const std::vector<int64_t>& other);

}  // namespace ccc::experiments
