#pragma once
// One configuration covers GPT-2, GPT-NeoX/Pythia, LLaMA and ccc's own byte-level models.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ccc::model {

enum class NormKind { kLayerNorm, kRMSNorm };
enum class ActKind { kGeluTanh, kGelu, kSilu, kRelu };
enum class PosKind { kLearned, kRotary, kNone };

/// Architecture hyper-parameters. Field names follow TransformerLens (d_model, n_heads, d_head, d_mlp, n_ctx).
struct ModelConfig {
  std::string arch = "ccc";  ///< "gpt2" | "gpt_neox" | "llama" | "ccc" (where the weights came from)
  int64_t d_vocab = 257;      ///< rows of the embedding (input ids are in [0, d_vocab))
  int64_t d_vocab_out = 256;  ///< rows of the unembedding (predicted ids are in [0, d_vocab_out))
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  ///< grouped-query attention when < n_heads
  int64_t d_head = 16;
  int64_t d_mlp = 256;
  int64_t n_ctx = 256;  ///< longest sequence the model accepts
  NormKind norm = NormKind::kLayerNorm;
  double norm_eps = 1e-5;
  ActKind act = ActKind::kGeluTanh;
  PosKind pos = PosKind::kLearned;
  int64_t rotary_dim = 0;  ///< leading dims of each head that are rotated (rotate-half form)
  double rope_theta = 10000.0;
  bool parallel_attn = false;  ///< GPT-NeoX: resid_post = resid_pre + attn(ln1 x) + mlp(ln2 x)
  bool gated_mlp = false;      ///< SwiGLU-style: act(W_gate x) * (W_in x)
  bool attn_only = false;      ///< no MLP sub-layers (ccc "model organisms")
  bool tied_embed = false;     ///< unembedding = first d_vocab_out rows of W_E
  bool attn_bias = true;       ///< biases on q/k/v and on the output projection
  bool mlp_bias = true;
  bool norm_bias = true;  ///< LayerNorm has a bias (RMSNorm never does)
  int64_t bos_id = 256;   ///< prepended to every scored or generated sequence
  int64_t eos_id = -1;    ///< -1 when the model has none

  /// Throws ccc::Error when fields are impossible (e.g. d_head*n_heads mismatch, rotary_dim odd).
  void validate() const;
  nlohmann::json to_json() const;
  /// Inverse of to_json (ccc's own config.json); missing fields are errors.
  static ModelConfig from_json(const nlohmann::json& j);
  /// Total number of parameters (embedding and unembedding included).
  int64_t n_params() const;
  /// Parameters in weight matrices touched once per token (what 2·N FLOPs/token counts).
  int64_t n_matmul_params() const;
};

std::string to_string(NormKind k);
std::string to_string(ActKind k);
std::string to_string(PosKind k);

/// The tiny byte-level config of the tests, the fuzzers and `ccc bench memory` (one definition for all):
/// d_model 16, 2 heads of 8, tied embedding, `n_layers` layers with an MLP of 32 (none when attn_only),
/// context n_ctx, rotary positions over the whole head (the rolling window policy) unless `learned`.
ModelConfig tiny_byte_config(int64_t n_layers = 1, int64_t n_ctx = 16, bool learned = true, bool attn_only = false);

}  // namespace ccc::model
