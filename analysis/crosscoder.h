#pragma once
// Model diffing with a crosscoder: one sparse dictionary (analysis/sae.h with S = 2 sources) trained jointly
// on two models' activations at the same hook and positions — model A (the base) and model B (e.g. its
// fine-tune) — each latent with a decoder per model. Per latent j:
//   relative norm  r_j = ‖W_dec[B, j]‖ / (‖W_dec[A, j]‖ + ‖W_dec[B, j]‖)
//   groups         A-only r < exclusive, B-only r > 1 − exclusive, shared shared_low ≤ r ≤ 1 − shared_low,
//                  in between otherwise, dead when it never fires on the evaluation rows;
//   latent scaling (Minder et al. 2025, the reconstruction-error variant): for a model-specific latent with
//                  its own model's decoder direction d_j, β_j^M = Σ_t f_j(t) ⟨ε_M(t), d_j⟩ / Σ_t f_j(t)² ‖d_j‖²
//                  where ε_M = x_M − x̂_M + f_j W_dec[M, j] is model M's reconstruction error without latent j;
//                  ν_j = β_j^other / β_j^own. A "specific" latent with ν_j ≥ scaling_keep is carried by the
//                  other model's activations too (an artefact of the sparsity penalty, not a new concept) and
//                  is counted as shared.
// Bits each group carries: model B scored on the evaluation text with its activation at the hook replaced by
// the crosscoder's reconstruction for B (from both models' activations at that position; BOS kept), then
// with each group's latents removed from it: Δbits = bits without the group − bits with the full splice.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "analysis/sae.h"
#include "model/formats/loader.h"

namespace ccc::analysis {

struct CrosscoderOptions {
  std::string hook;              ///< "" = blocks.<n_layers / 2>.hook_resid_post
  int64_t expansion = 8, k = 32;
  int64_t steps = 800, batch = 1024;
  double lr = 1e-3;
  uint64_t seed = 0;
  double exclusive = 0.1, shared_low = 0.3, scaling_keep = 0.5;
  int64_t window = 256;          ///< bytes per scored window (each [BOS, window bytes])
};

struct CrosscoderReport {
  std::string hook;
  int64_t d_in = 0, d_sae = 0, train_rows = 0, eval_rows = 0;
  std::vector<double> relative_norm, nu;  ///< per latent (nu NaN for latents that are not model-specific)
  std::vector<std::string> group;         ///< per latent: shared | a_only | b_only | between | dead (after scaling)
  int64_t a_only_raw = 0, b_only_raw = 0; ///< before the latent-scaling correction
  int64_t shared = 0, a_only = 0, b_only = 0, between = 0, dead = 0;
  double explained_variance_a = 0, explained_variance_b = 0;  ///< on the evaluation rows (NaN for a source that does not vary)
  double bits_clean_b = 0, bits_splice_b = 0;                 ///< model B on the evaluation text
  double delta_bits_shared = 0, delta_bits_a_only = 0, delta_bits_b_only = 0;  ///< removing each group from the splice
  int64_t eval_bytes = 0;
  Sae sae;
  nlohmann::json to_json() const;  ///< counts, bits and settings (not the per-latent vectors)
};

/// The activations of `hook` at every byte of `text` (rows [T, d], f32), scored as windows [BOS, `window`
/// bytes] (the tail shorter than a window is left out; BOS rows are not returned).
torch::Tensor hook_rows(model::LoadedModel& m, std::string_view text, const std::string& hook, int64_t window);

/// Trains the crosscoder of `a` and `b` on `train_text` and reports on `eval_text`. The models must be
/// byte-level with the same hook shape. Throws ccc::Error otherwise, or when a text is shorter than a window.
CrosscoderReport diff_models(model::LoadedModel& a, model::LoadedModel& b, std::string_view train_text, std::string_view eval_text,
                             const CrosscoderOptions& o);

}  // namespace ccc::analysis
