#pragma once
// Sparse dictionaries (sparse autoencoders) over one or more activation sources: one latent space, an
// encoder and a decoder per source (S = 1: an SAE; S = 2: the crosscoder of two models). Features and
// reconstruction, per source s:
//   f  = act( Σ_s (x_s − b_dec[s]) W_enc[s] + b_enc )        W_enc [S, d_in, d_sae], b_enc [d_sae]
//   x̂_s = f W_dec[s] + b_dec[s]                              W_dec [S, d_sae, d_in], b_dec [S, d_in]
// act: relu; topk (the k largest pre-activations per row, ReLUed); batchtopk (the k·rows largest of a batch
// in training, a learned threshold at inference: f = pre · [pre > threshold]). Training (Gao et al. 2024,
// Bricken et al. 2023): inputs scaled by a fixed c so E‖x‖² = d_in, decoder rows unit norm (the gradient's
// component along each row removed before each Adam step, rows renormalised after), b_dec initialised to
// the data mean, encoder initialised as the decoder's transpose; relu: MSE + λ Σ_j f_j ‖W_dec_j‖ with λ
// warmed up linearly; topk / batchtopk: MSE + an auxiliary loss that lets the aux_k most active dead
// latents reconstruct the residual. The scale c is folded into the weights when training ends, so the
// formula above holds on raw activations.
//
// Evaluation in bits (splicing at the hook): analysis/sae_eval.h.

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace ccc::analysis {

enum class SaeArch { kRelu, kTopK, kBatchTopK };
SaeArch parse_sae_arch(const std::string& s);  ///< "relu" | "topk" | "batchtopk"
std::string to_string(SaeArch a);

struct Sae {
  SaeArch arch = SaeArch::kTopK;
  int64_t k = 32;            ///< topk / batchtopk
  double threshold = 0;      ///< batchtopk's inference threshold
  torch::Tensor W_enc, b_enc, W_dec, b_dec;  ///< float32, shapes above
  int64_t sources() const { return W_enc.size(0); }
  int64_t d_in() const { return W_enc.size(1); }
  int64_t d_sae() const { return W_enc.size(2); }
  /// Pre-activations [rows, d_sae] of x [rows, S, d_in].
  torch::Tensor pre(const torch::Tensor& x) const;
  /// Features [rows, d_sae] (inference: batchtopk uses the threshold).
  torch::Tensor encode(const torch::Tensor& x) const;
  /// Reconstruction [rows, S, d_in] of features f.
  torch::Tensor decode(const torch::Tensor& f) const;
  /// decode(encode(x)) (topk reads only the selected decoder rows).
  torch::Tensor reconstruct(const torch::Tensor& x) const;
};

/// Rows of training data: [rows, S, d_in] float32 (a shuffled stream; called once per step).
using SaeBatches = std::function<torch::Tensor(int64_t rows)>;

struct SaeTrainOptions {
  SaeArch arch = SaeArch::kTopK;
  int64_t d_sae = 0;          ///< latents (expansion × d_in)
  int64_t k = 32;
  double l1 = 5.0;            ///< relu: λ after warm-up (on scaled inputs)
  int64_t l1_warmup = 1000;   ///< relu: steps of the linear warm-up
  int64_t steps = 1000, batch = 4096;
  double lr = 4e-4;
  int64_t dead_rows = 1 << 20;  ///< a latent is dead when it has not fired for this many rows
  int64_t aux_k = 512;
  double aux_coeff = 1.0 / 32;
  int64_t scale_rows = 8192;  ///< rows that estimate the input scale and b_dec's initial mean
  /// Every this many steps, latents dead for `dead_rows` rows restart on high-error rows of the batch
  /// (Bricken et al.'s resampling; 0 = never). The auxiliary loss cannot revive a latent whose
  /// pre-activation is negative everywhere (its ReLU passes no gradient); resampling can.
  int64_t resample_every = 0;
  const Sae* init = nullptr;  ///< continue from this dictionary (same sizes) instead of a fresh initialisation
  uint64_t seed = 0;
  std::function<void(const nlohmann::json& progress)> progress;  ///< every `log_every` steps
  int64_t log_every = 100;
};

/// What training ends with (on the last `log_every` steps' batches, scaled inputs).
struct SaeTrainMetrics {
  double mse = 0, explained_variance = 0, l0 = 0, dead_fraction = 0, input_scale = 1, rows_per_second = 0;
  int64_t steps = 0, rows = 0;
  nlohmann::json to_json() const;
};

/// Trains a dictionary (seeded: the same batches and options give the same weights). Throws ccc::Error for
/// bad options (d_sae < 1, k out of range, steps < 1).
Sae train_sae(const SaeBatches& batches, const SaeTrainOptions& o, SaeTrainMetrics* metrics = nullptr);

/// The training loss of one batch x [rows, S, d_in] at the weights of `s` (taken as they are: no input
/// scale) and its gradients in the saved layout, computed as a training step computes them (by hand from the
/// selected latents — for relu the positive ones, with λ = o.l1 — or, with `dense` (relu only), by autograd
/// through the dense formula, as training does while more than 1/8 of the pre-activations are positive);
/// `dead` [d_sae] (bool) marks the latents the auxiliary loss may use. Before the decoder gradient's
/// projection. For checking the step.
struct SaeGradients {
  double loss = 0;
  torch::Tensor W_enc, b_enc, W_dec, b_dec;
};
SaeGradients sae_gradients(const Sae& s, const torch::Tensor& x, const SaeTrainOptions& o, const torch::Tensor& dead,
                           bool dense = false);

class ActivationStore;

/// One hook of a dump as SaeBatches ([rows, 1, d] per call): a buffer of `buffer_rows` rows filled from the
/// file in order (BOS rows skipped, the file read again from the start when it ends), rows drawn at random
/// (seeded) and each drawn slot refilled with the next row of the file. Never more than the buffer in memory
/// (plus the dump's position column). Throws ccc::Error for a hook the dump lacks. Under mpirun (data-parallel
/// train_sae) rank r reads only the r-th of N contiguous slices of the rows, with its own seed and buffer / N.
SaeBatches dump_batches(const ActivationStore& store, const std::string& hook, int64_t buffer_rows, uint64_t seed);

/// Writes dir/sae.safetensors with SAELens' names (S = 1: W_enc [d_in, d_sae], b_enc [d_sae], W_dec
/// [d_sae, d_in], b_dec [d_in], plus threshold [1] for batchtopk; S > 1 keeps the leading source dimension)
/// and dir/sae.json (`meta` plus architecture, sizes, k, threshold), both atomically.
void save_sae(const Sae& sae, const std::string& dir, const nlohmann::json& meta);
/// Reads what save_sae wrote; errors name the file and the tensor that is missing or mis-shaped. `meta`
/// receives sae.json when given.
Sae load_sae(const std::string& dir, nlohmann::json* meta = nullptr);

}  // namespace ccc::analysis
