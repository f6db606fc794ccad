#pragma once
// A dictionary judged in bits: its reconstruction spliced into the model's forward pass at its hook while
// the text is scored under the compressor's segmentation and window policy, against the clean model and
// the hook zeroed or replaced by its mean. Splices replace the activation at every position but BOS (the
// dictionaries are trained on non-BOS rows); BOS keeps its clean activation in every run.
//   bits_recovered      = (bits_zero − bits_sae) / (bits_zero − bits_clean)
//   bits_recovered_mean = (bits_mean − bits_sae) / (bits_mean − bits_clean)

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "analysis/sae.h"
#include "analysis/units.h"
#include "model/core/hooks.h"
#include "model/formats/loader.h"
#include "model/scoring/streams.h"

namespace ccc::analysis {

/// Replaces the activation at `hook` ([batch, pos, …] with d_in values per position) at every non-BOS
/// position by `replace(x)` (x and the result [rows, d_in]); BOS positions (stream position 0, from the
/// call's RunInfo, else model position 0) pass through. `sae`-independent: the zero / mean / feature
/// ablation edits use it too.
using RowEdit = std::function<torch::Tensor(const torch::Tensor& rows)>;
void install_row_edit(model::HookSet& hooks, const std::string& hook, RowEdit replace);

/// x → x̂ = decode(encode(x)) of `sae` at its hook (sae must outlive the hook set).
void install_sae_splice(model::HookSet& hooks, const Sae& sae, const std::string& hook);

/// x → x − Σ_{j ∈ features} f_j(x) W_dec[j]: the features' contributions removed, the SAE's error kept.
void install_feature_ablation(model::HookSet& hooks, const Sae& sae, const std::string& hook,
                              const std::vector<int64_t>& features);

/// Checks that `hook` exists in `m` with d_in values per position; throws ccc::Error naming `what`.
void check_sae_fits(const model::LoadedModel& m, const Sae& sae, const std::string& hook, const std::string& what);

/// The dictionary's features as units of `hook` for analyze_units (named "<hook>:sae"; sae must outlive it).
UnitOptions::Derived sae_feature_units(const Sae& sae, const std::string& hook);

/// Per-token bits (streams in order, as segmented_token_bits) of `text` with each of `features` removed
/// alone (install_feature_ablation), one scoring per feature.
std::vector<std::vector<double>> feature_ablation_bits(model::LoadedModel& m, const Sae& sae, const std::string& hook,
                                                       std::string_view text, const model::StreamOptions& opt,
                                                       const std::vector<int64_t>& features);

struct SaeEval {
  int64_t rows = 0;                  ///< non-BOS positions seen at the hook
  int64_t tokens = 0, bytes = 0;     ///< coded tokens, input bytes
  double l0 = 0;                     ///< mean active features per row
  double explained_variance = 0;     ///< 1 − Σ‖x − x̂‖² / Σ‖x − mean‖²
  double dead_fraction = 0;          ///< features that never fire on the text
  double dense_fraction = 0;         ///< features that fire on more than 10% of rows
  double bits_clean = 0, bits_sae = 0, bits_zero = 0, bits_mean = 0;
  double bits_recovered = 0, bits_recovered_mean = 0;
  std::vector<int64_t> fires;        ///< [d_sae] rows each feature fired on
  nlohmann::json to_json() const;    ///< every field but fires, bits_per_byte of each run added
};

/// Scores `text` four times under `opt` (clean, SAE spliced, zeroed, mean-replaced; the mean over the clean
/// run's non-BOS rows) and measures the dictionary on the clean run's activations.
SaeEval evaluate_sae(model::LoadedModel& m, const Sae& sae, const std::string& hook, std::string_view text,
                     const model::StreamOptions& opt);

/// The frontier: one dictionary trained per point (topk / batchtopk: a k; relu: an L1 coefficient; every
/// other option from `base`, the same seed and batches stream for each) and evaluated on `text`.
struct SaeSweepPoint {
  SaeArch arch = SaeArch::kTopK;
  double value = 0;  ///< k or the L1 coefficient
  Sae sae;
  SaeTrainMetrics train;
  SaeEval eval;
  nlohmann::json to_json() const;  ///< arch, k or l1, training metrics, the evaluation
};
struct SaeSweepSpec {
  std::vector<SaeArch> archs;
  std::vector<int64_t> ks;       ///< topk / batchtopk points
  std::vector<double> l1s;       ///< relu points
};
/// `batches()` makes a fresh (seeded) stream for each point; `done` is called after each point (e.g. to
/// save it) with its index and the number of points.
std::vector<SaeSweepPoint> sweep_sae(const std::function<SaeBatches()>& batches, const SaeTrainOptions& base,
                                     const SaeSweepSpec& spec, model::LoadedModel& m, const std::string& hook,
                                     std::string_view text, const model::StreamOptions& opt,
                                     const std::function<void(const SaeSweepPoint&, size_t i, size_t n)>& done = {});

}  // namespace ccc::analysis
