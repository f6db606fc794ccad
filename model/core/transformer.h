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

#include "model/core/config.h"
#include "model/core/hooks.h"
#include "model/kernels/decode_gemm.h"

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

/// Per-call options of forward. Pointers are borrowed for the call only.
struct RunOptions {
  HookSet* hooks = nullptr;
  KVCache* cache = nullptr;       ///< when set: tokens continue the cached sequence at position cache->len
  const RunInfo* info = nullptr;  ///< the caller's record of rows, positions, byte offsets (hooks see it)
  /// When >= 0: stop before block `stop_at_layer` and return the residual stream there [batch, pos, d_model]
  /// (TransformerLens's stop_at_layer; that block's hooks do not run). With a cache, only the keys and
  /// values of the blocks run are written (the full path: no decode step).
  int stop_at_layer = -1;
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& cfg);

  /// tokens [batch, pos] int64 -> logits [batch, pos, d_vocab_out] float32.
  /// Without a cache, positions start at 0; with one, at cache->len, and the cache grows by pos.
  torch::Tensor forward(const torch::Tensor& tokens, const RunOptions& run = {});

  /// Continues from the residual stream entering block `start_at_layer` (resid [batch, pos, d_model], as
  /// returned by forward with stop_at_layer) -> logits, or the residual before run.stop_at_layer. Hooks of
  /// blocks before start_at_layer and of the embedding do not run. Positions start at 0, or with a cache at
  /// cache->len (only blocks from start_at_layer read and write it; the cache grows by pos).
  /// forward_from(forward(t, {.stop_at_layer = L}), L) equals forward(t) bit for bit (full path).
  torch::Tensor forward_from(const torch::Tensor& resid, int start_at_layer, const RunOptions& run = {});

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
  using Rope = std::pair<torch::Tensor, torch::Tensor>;  // cos, sin [p, rotary_dim]
  /// What every stage of one full-path forward call shares.
  struct Call {
    HookSet* hooks;        // nullptr when no hook is registered
    KVCache* cache;        // nullptr without a cache
    const RunInfo* info;
    int64_t off;           // model position of the call's first token
    Rope rope;             // cos, sin [p, rotary_dim] (rotary models)
    torch::Tensor hook(int slot, torch::Tensor x, int layer) const {
      return ccc::model::hook(hooks, slot, std::move(x), layer, off, info);
    }
  };
  torch::Tensor norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, const Call& call,
                     int slot_scale, int slot_norm, int layer) const;
  Rope rope(int64_t off, int64_t p) const;  // positions off .. off+p-1
  torch::Tensor attention(const Layer& L, const torch::Tensor& x, int layer, const Call& call) const;
  torch::Tensor attention_output(const Layer& L, const torch::Tensor& z, int layer, const Call& call) const;
  torch::Tensor mlp(const Layer& L, const torch::Tensor& x, int layer, const Call& call) const;
  /// Blocks [from, to), then with `finish` the final norm and unembedding (full path).
  torch::Tensor run_blocks(torch::Tensor x, int from, int to, bool finish, const Call& call) const;
  /// Checks a call of b rows × p positions against run's cache and info; returns the first position.
  int64_t check_call(const char* who, int64_t b, int64_t p, const RunOptions& run) const;
  /// One new token per row through the cache, no autograd, CPU fp32 (transformer_decode.cpp).
  torch::Tensor forward_decode(const torch::Tensor& tokens, HookSet* hooks, KVCache& cache, const RunInfo* info) const;
  /// The weight packed for the decode GEMM, rebuilt when the weight's version changes.
  std::shared_ptr<const PackedLinear> packed(const torch::Tensor& w) const;
  /// x W^T + b on the full path.
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
  torch::Tensor unembed_weight() const;
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
