#pragma once
// One configurable decoder-only transformer (GPT-2, GPT-NeoX/Pythia, LLaMA, ccc byte models).
// Parameters are registered under canonical names (TransformerLens-like, Linear layout [out, in]):
//   embed.W_E [d_vocab, d_model]              pos_embed.W_pos [n_ctx, d_model] (learned positions)
//   blocks.{l}.ln1.w / .b [d_model]           blocks.{l}.attn.W_qkv [(n_heads+2*n_kv_heads)*d_head, d_model]
//   blocks.{l}.attn.b_qkv, .W_O [d_model, n_heads*d_head], .b_O
//   blocks.{l}.ln2.w / .b                     blocks.{l}.mlp.W_in / W_gate [d_mlp, d_model], .W_out [d_model, d_mlp]
//   blocks.{l}.mlp.b_in / b_gate / b_out      ln_final.w / .b     unembed.W_U [d_vocab_out, d_model] (untied)
// Rotary embeddings use the rotate-half form on the first rotary_dim dims of each head; loaders permute
// checkpoints that use interleaved pairs (llama2.c) into it.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/config.h"
#include "model/decode_gemm.h"
#include "model/hooks.h"

namespace ccc::model {

/// Keys and values of past positions for the incremental path. All rows advance in lockstep.
///
/// Plain cache: position t lives in slot t; the sequence may grow to `capacity` (<= n_ctx) positions.
/// Rolling cache (sliding-window attention without recomputation): position t lives in slot
/// t % capacity and each query attends to the last `capacity` positions, itself included, however long
/// the sequence grows. Keys are stored rotated at their absolute positions and rotary scores depend only
/// on distances, so a window never needs re-encoding; models with learned positions cannot roll.
struct KVCache {
  std::vector<torch::Tensor> k, v;  ///< per layer [batch, n_kv_heads, capacity, d_head]
  int64_t batch = 0;
  int64_t capacity = 0;
  int64_t len = 0;  ///< positions fed so far (= absolute position of the next token)
  bool rolling = false;
  void reset() { len = 0; }
};

/// Per-call options of forward. Both pointers are borrowed for the call only.
struct RunOptions {
  HookSet* hooks = nullptr;
  KVCache* cache = nullptr;  ///< when set: tokens continue the cached sequence at position cache->len
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& cfg);

  /// tokens [batch, pos] int64 -> logits [batch, pos, d_vocab_out] float32.
  /// Without a cache, positions start at 0; with one, at cache->len, and the cache grows by pos.
  torch::Tensor forward(const torch::Tensor& tokens, const RunOptions& run = {});

  /// Empty cache for `batch` sequences of up to `capacity` (<= n_ctx, 0 = n_ctx) positions, or with
  /// `rolling`, a sliding window of `capacity` positions over sequences of any length. `dtype` kHalf
  /// stores keys and values in fp16 (half the memory traffic of single-token decoding; attention still
  /// computes in fp32).
  KVCache make_cache(int64_t batch, int64_t capacity = 0, bool rolling = false,
                     torch::ScalarType dtype = torch::kFloat32) const;

  const ModelConfig& config() const { return cfg_; }
  const HookRegistry& hook_registry() const { return registry_; }
  /// Shape of each hook point, with symbolic "batch" / "pos" / "k_pos" dims (for `ccc hooks`).
  std::vector<std::pair<std::string, std::vector<std::string>>> hook_shapes() const;

  /// Canonical name -> parameter (shares storage with the model).
  std::map<std::string, torch::Tensor> state_dict() const;
  /// Copies tensors in by canonical name; every parameter must be present with its exact shape and no
  /// extra key may remain. `source` names the file in error messages.
  void load_state_dict(const std::map<std::string, torch::Tensor>& sd, const std::string& source);
  /// GPT-2 style init: N(0, 0.02), output projections scaled by 1/sqrt(2·n_layers), norms 1, biases 0.
  void init_weights(uint64_t seed);

 private:
  struct Layer {
    torch::Tensor ln1_w, ln1_b, W_qkv, b_qkv, W_O, b_O, ln2_w, ln2_b, W_in, b_in, W_gate, b_gate, W_out, b_out;
  };
  torch::Tensor norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, HookSet* hooks,
                     int slot_scale, int slot_norm, int layer, int64_t off) const;
  using Rope = std::pair<torch::Tensor, torch::Tensor>;  // cos, sin [p, rotary_dim]
  Rope rope(int64_t off, int64_t p) const;                // positions off .. off+p-1
  torch::Tensor attention(const Layer& L, const torch::Tensor& x, int layer, int64_t off, KVCache* cache,
                          HookSet* hooks, bool decode, const Rope& rope) const;
  torch::Tensor mlp(const Layer& L, const torch::Tensor& x, int layer, int64_t off, HookSet* hooks, bool decode) const;
  /// x W^T + b; `decode` (one token per row, no autograd) uses weights packed once per version.
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, bool decode) const;
  torch::Tensor param(torch::nn::Module& owner, const std::string& name, std::vector<int64_t> shape, bool want);

  ModelConfig cfg_;
  HookRegistry registry_;
  std::vector<Layer> layers_;
  torch::Tensor W_E_, W_pos_, lnf_w_, lnf_b_, W_U_;  // W_U_ undefined when tied
  torch::Tensor rope_cos_, rope_sin_;                 // [n_ctx, rotary_dim]
  torch::Tensor rope_inv_;                            // [rotary_dim / 2] float64 inverse frequencies
  // packed weights of the decode path, keyed by (data, rows, cols), rebuilt when a weight's version changes
  using PackKey = std::tuple<const void*, int64_t, int64_t>;
  struct Packs {
    std::mutex mu;
    std::map<PackKey, std::pair<int64_t, std::shared_ptr<const PackedLinear>>> packed;
  };
  std::shared_ptr<Packs> packs_ = std::make_shared<Packs>();
};
TORCH_MODULE(Transformer);

}  // namespace ccc::model
