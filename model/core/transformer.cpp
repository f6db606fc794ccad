#include "model/core/transformer.h"

#include <algorithm>
#include <cmath>

#include "model/core/fused_ops.h"
#include "model/kernels/decode_gemm.h"
#include "model/base/error.h"

namespace ccc::model {

namespace {
using torch::indexing::Slice;
namespace F = torch::nn::functional;

torch::Tensor activation(ActKind k, const torch::Tensor& x) {
  switch (k) {
    case ActKind::kGeluTanh: return gelu_tanh(x);
    case ActKind::kGelu: return torch::gelu(x);
    case ActKind::kSilu: return torch::silu(x);
    case ActKind::kRelu: return torch::relu(x);
  }
  return x;
}

std::shared_ptr<torch::nn::Module> child(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}
}  // namespace

torch::Tensor TransformerImpl::param(torch::nn::Module& owner, const std::string& name, std::vector<int64_t> shape,
                                     bool want) {
  if (!want) return {};
  return owner.register_parameter(name, torch::zeros(shape));
}

TransformerImpl::TransformerImpl(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  const auto& c = cfg_;
  const int64_t d_qkv = (c.n_heads + 2 * c.n_kv_heads) * c.d_head;
  const bool ln_bias = c.norm == NormKind::kLayerNorm && c.norm_bias;
  W_E_ = param(*child(*this, "embed"), "W_E", {c.d_vocab, c.d_model}, true);
  if (c.pos == PosKind::kLearned) W_pos_ = param(*child(*this, "pos_embed"), "W_pos", {c.n_ctx, c.d_model}, true);
  auto blocks = child(*this, "blocks");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto blk = child(*blocks, std::to_string(l));
    Layer L;
    auto ln1 = child(*blk, "ln1");
    L.ln1_w = param(*ln1, "w", {c.d_model}, true);
    L.ln1_b = param(*ln1, "b", {c.d_model}, ln_bias);
    auto attn = child(*blk, "attn");
    L.W_qkv = param(*attn, "W_qkv", {d_qkv, c.d_model}, true);
    L.b_qkv = param(*attn, "b_qkv", {d_qkv}, c.attn_bias);
    L.W_O = param(*attn, "W_O", {c.d_model, c.n_heads * c.d_head}, true);
    L.b_O = param(*attn, "b_O", {c.d_model}, c.attn_bias);
    if (!c.attn_only) {
      auto ln2 = child(*blk, "ln2");
      L.ln2_w = param(*ln2, "w", {c.d_model}, true);
      L.ln2_b = param(*ln2, "b", {c.d_model}, ln_bias);
      auto mlp = child(*blk, "mlp");
      L.W_in = param(*mlp, "W_in", {c.d_mlp, c.d_model}, true);
      L.b_in = param(*mlp, "b_in", {c.d_mlp}, c.mlp_bias);
      L.W_gate = param(*mlp, "W_gate", {c.d_mlp, c.d_model}, c.gated_mlp);
      L.b_gate = param(*mlp, "b_gate", {c.d_mlp}, c.gated_mlp && c.mlp_bias);
      L.W_out = param(*mlp, "W_out", {c.d_model, c.d_mlp}, true);
      L.b_out = param(*mlp, "b_out", {c.d_model}, c.mlp_bias);
    }
    layers_.push_back(L);
  }
  auto lnf = child(*this, "ln_final");
  lnf_w_ = param(*lnf, "w", {c.d_model}, true);
  lnf_b_ = param(*lnf, "b", {c.d_model}, ln_bias);
  if (!c.tied_embed) W_U_ = param(*child(*this, "unembed"), "W_U", {c.d_vocab_out, c.d_model}, true);

  if (c.pos == PosKind::kRotary) {
    // inv_freq[j] = theta^(-2j / rotary_dim); computed in double, stored fp32 (rotate-half: cat(f, f)).
    const int64_t half = c.rotary_dim / 2;
    auto inv = torch::empty({half}, torch::kFloat64);
    for (int64_t j = 0; j < half; ++j) inv[j] = std::pow(c.rope_theta, -2.0 * j / c.rotary_dim);
    auto t = torch::arange(c.n_ctx, torch::kFloat64);
    rope_inv_ = inv;
    auto freqs = torch::outer(t, inv);
    auto emb = torch::cat({freqs, freqs}, -1);
    rope_cos_ = register_buffer("rope_cos", emb.cos().to(torch::kFloat32));
    rope_sin_ = register_buffer("rope_sin", emb.sin().to(torch::kFloat32));
  }

  // hook registry
  registry_.n_layers = static_cast<int>(c.n_layers);
  registry_.names.assign(c.n_layers * kNumBlockSites + kNumGlobalSites, "");
  registry_.opt_in.assign(registry_.names.size(), false);
  for (int l = 0; l < c.n_layers; ++l) {
    for (int s = 0; s < kNumBlockSites; ++s) {
      bool has = true;
      if (s == kRotQ || s == kRotK) has = c.pos == PosKind::kRotary;
      if (s == kResidMid) has = !c.parallel_attn && !c.attn_only;
      if (s == kLn2Scale || s == kLn2Normalized || s == kMlpPre || s == kMlpPost || s == kMlpOut) has = !c.attn_only;
      if (s == kMlpPreLinear) has = c.gated_mlp;
      if (has) registry_.names[HookRegistry::block_slot(l, s)] = hook_name(l, static_cast<BlockSite>(s));
    }
    registry_.opt_in[HookRegistry::block_slot(l, kResult)] = true;
  }
  for (int s = 0; s < kNumGlobalSites; ++s) {
    if (s == kPosEmbed && c.pos != PosKind::kLearned) continue;
    registry_.names[registry_.global_slot(s)] = kGlobalSiteNames[s];
  }
}

std::vector<std::pair<std::string, std::vector<std::string>>> TransformerImpl::hook_shapes() const {
  const auto& c = cfg_;
  auto n = [](int64_t v) { return std::to_string(v); };
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (int s = 0; s < registry_.size(); ++s) {
    const auto& name = registry_.names[s];
    if (name.empty()) continue;
    std::vector<std::string> shape;
    const int nb = c.n_layers * kNumBlockSites;
    if (s < nb) {
      switch (s % kNumBlockSites) {
        case kLn1Scale: case kLn2Scale: shape = {"batch", "pos", "1"}; break;
        case kQ: case kRotQ: case kZ: shape = {"batch", "pos", n(c.n_heads), n(c.d_head)}; break;
        case kK: case kV: case kRotK: shape = {"batch", "pos", n(c.n_kv_heads), n(c.d_head)}; break;
        case kAttnScores: case kPattern: shape = {"batch", n(c.n_heads), "pos", "k_pos"}; break;
        case kResult: shape = {"batch", "pos", n(c.n_heads), n(c.d_model)}; break;
        case kMlpPre: case kMlpPreLinear: case kMlpPost: shape = {"batch", "pos", n(c.d_mlp)}; break;
        default: shape = {"batch", "pos", n(c.d_model)};
      }
    } else {
      switch (s - nb) {
        case kLnFinalScale: shape = {"batch", "pos", "1"}; break;
        case kUnembedOut: shape = {"batch", "pos", n(c.d_vocab_out)}; break;
        default: shape = {"batch", "pos", n(c.d_model)};
      }
    }
    out.emplace_back(name, shape);
  }
  return out;
}

KVCache TransformerImpl::make_cache(int64_t batch, int64_t capacity, bool rolling, torch::ScalarType dtype) const {
  if (capacity <= 0) capacity = cfg_.n_ctx;
  CCC_CHECK(capacity <= cfg_.n_ctx, "KV cache capacity ", capacity, " exceeds the model context ", cfg_.n_ctx);
  CCC_CHECK(batch > 0, "KV cache batch must be > 0");
  CCC_CHECK(dtype == torch::kFloat32 || dtype == torch::kHalf, "KV cache dtype must be float32 or float16");
  CCC_CHECK(!rolling || cfg_.pos != PosKind::kLearned,
            "a rolling KV cache needs relative positions (rotary); this model has learned absolute positions");
  KVCache cache;
  cache.batch = batch;
  cache.capacity = capacity;
  cache.rolling = rolling;
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    cache.k.push_back(torch::zeros({batch, cfg_.n_kv_heads, capacity, cfg_.d_head}, dtype));
    cache.v.push_back(torch::zeros({batch, cfg_.n_kv_heads, capacity, cfg_.d_head}, dtype));
  }
  return cache;
}

torch::Tensor TransformerImpl::norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                    const Call& call, int slot_scale, int slot_norm, int layer) const {
  HookSet* hooks = call.hooks;
  torch::Tensor y;
  if (cfg_.norm == NormKind::kLayerNorm) {
    if (hooks != nullptr && hooks->active(slot_scale) && torch::GradMode::is_enabled()) {
      // gradients through hook_scale: the explicit formula, so the scale is on the graph
      auto mean = x.mean(-1, true);
      auto xc = x - mean;
      auto scale = call.hook(slot_scale, (xc.square().mean(-1, true) + cfg_.norm_eps).sqrt(), layer);  // [b, p, 1]
      y = xc / scale * w;
      if (b.defined()) y = y + b;
      return call.hook(slot_norm, y, layer);
    }
    // Fused kernel (one pass forward and backward); hook_scale = sqrt(var + eps) = 1 / rstd. The output
    // is recomputed from the scale only when an editor replaced it, so observing never changes numerics.
    auto [out, mean, rstd] = torch::native_layer_norm(x, {cfg_.d_model}, w, b, cfg_.norm_eps);
    y = out;
    if (hooks != nullptr && hooks->active(slot_scale)) {
      auto scale = rstd.reciprocal();  // [b, p, 1]
      auto edited = call.hook(slot_scale, scale, layer);
      if (!edited.is_same(scale)) {
        y = (x - mean) / edited * w;
        if (b.defined()) y = y + b;
      }
    }
  } else {
    auto scale = (x.square().mean(-1, true) + cfg_.norm_eps).sqrt();  // [b, p, 1]
    scale = call.hook(slot_scale, scale, layer);
    y = x / scale * w;
  }
  return call.hook(slot_norm, y, layer);
}

std::pair<torch::Tensor, torch::Tensor> TransformerImpl::rope(int64_t off, int64_t p) const {
  if (off + p <= cfg_.n_ctx) return {rope_cos_.narrow(0, off, p), rope_sin_.narrow(0, off, p)};
  // rolling cache past n_ctx: the same double-precision formula as the tables
  auto table = [&](int64_t from, int64_t count) -> Rope {
    auto freqs = torch::outer(torch::arange(from, from + count, torch::kFloat64), rope_inv_);
    auto emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos().to(torch::kFloat32), emb.sin().to(torch::kFloat32)};
  };
  // A decode step (p = 1) would run those seven ops, double cos and sin included, for one row per step:
  // instead each thread keeps a table of kChunk positions. Every op is elementwise and, with rotary_dim a
  // multiple of 16, both a one-row call and a chunk run ATen's vectorized loop on whole vectors only
  // (no scalar tail), so the rows are the same bits (pinned by the compressed-bytes test).
  constexpr int64_t kChunk = 512;
  if (p != 1 || cfg_.rotary_dim % 16 != 0) return table(off, p);
  struct Chunk {
    torch::Tensor inv;  // whose table (the model's own inverse frequencies)
    int64_t begin = -1;
    Rope rows;
  };
  thread_local Chunk chunk;
  const int64_t begin = off / kChunk * kChunk;
  if (chunk.begin != begin || !chunk.inv.defined() || !chunk.inv.is_same(rope_inv_)) {
    chunk.rows = table(begin, kChunk);
    chunk.inv = rope_inv_;
    chunk.begin = begin;
  }
  return {chunk.rows.first.narrow(0, off - begin, 1), chunk.rows.second.narrow(0, off - begin, 1)};
}

std::shared_ptr<const PackedLinear> TransformerImpl::packed(const torch::Tensor& w) const {
  const int64_t n = w.size(0), k = w.size(1);
  const PackKey key{w.data_ptr(), n, k};
  std::lock_guard<std::mutex> lock(packs_->mu);
  auto& slot = packs_->packed[key];
  // inference tensors (a model built under InferenceMode) have no version counter and cannot change
  const int64_t version = w.is_inference() ? 0 : static_cast<int64_t>(w._version());
  if (!slot.second || slot.first != version) {
    auto wc = w.contiguous();
    slot = {version, std::make_shared<const PackedLinear>(pack_linear(wc.data_ptr<float>(), n, k))};
  }
  return slot.second;
}

torch::Tensor TransformerImpl::linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const {
  return F::linear(x, w, b);
}

torch::Tensor TransformerImpl::unembed_weight() const {
  const auto& c = cfg_;
  return c.tied_embed ? (c.d_vocab_out == c.d_vocab ? W_E_ : W_E_.narrow(0, 0, c.d_vocab_out)) : W_U_;
}

torch::Tensor TransformerImpl::attention(const Layer& L, const torch::Tensor& x, int layer, const Call& call) const {
  const auto& c = cfg_;
  const int64_t b = x.size(0), p = x.size(1), H = c.n_heads, K = c.n_kv_heads, dh = c.d_head;
  const int64_t off = call.off;
  KVCache* cache = call.cache;
  HookSet* hooks = call.hooks;
  auto slot = [&](int s) { return HookRegistry::block_slot(layer, s); };
  // qkv; split (not narrow): its backward writes the three gradients into one buffer in a single pass
  auto qkv = linear(x, L.W_qkv, L.b_qkv);  // [b, p, (H+2K)*dh]
  auto parts = qkv.split_with_sizes({H * dh, K * dh, K * dh}, -1);
  auto q = call.hook(slot(kQ), parts[0].view({b, p, H, dh}), layer);
  auto k = call.hook(slot(kK), parts[1].view({b, p, K, dh}), layer);
  auto v = call.hook(slot(kV), parts[2].view({b, p, K, dh}), layer);
  if (c.pos == PosKind::kRotary) {
    q = call.hook(slot(kRotQ), rotary_embed(q, call.rope.first, call.rope.second), layer);
    k = call.hook(slot(kRotK), rotary_embed(k, call.rope.first, call.rope.second), layer);
  }
  // keys and values of all visible positions [b, K, T, dh] and the additive mask [1, p, T]: query i sits
  // at model position off + i and sees key position j when j <= off + i (and, rolling, j > off + i - cap)
  auto kt = k.transpose(1, 2), vt = v.transpose(1, 2);
  std::vector<int64_t> kpos;  // model position of each key column, -1 = empty slot
  int64_t window = 0;         // 0 = unlimited
  if (cache != nullptr && cache->rolling) {
    const int64_t cap = cache->capacity;
    window = cap;
    for (int64_t s = 0; s < cap; ++s) kpos.push_back(off - 1 >= s ? s + cap * ((off - 1 - s) / cap) : -1);
    for (int64_t i = 0; i < p; ++i) kpos.push_back(off + i);
    auto kn = kt, vn = vt;
    kt = torch::cat({cache->k[layer].to(kn.scalar_type()), kn}, 2);
    vt = torch::cat({cache->v[layer].to(vn.scalar_type()), vn}, 2);
    const int64_t keep = std::min(p, cap);
    auto slots = torch::empty({keep}, torch::kInt64);
    for (int64_t i = 0; i < keep; ++i) slots[i] = (off + p - keep + i) % cap;
    const auto dt = cache->k[layer].scalar_type();
    cache->k[layer].index_copy_(2, slots, kn.narrow(2, p - keep, keep).to(dt));
    cache->v[layer].index_copy_(2, slots, vn.narrow(2, p - keep, keep).to(dt));
  } else if (cache != nullptr) {
    cache->k[layer].narrow(2, off, p).copy_(kt);
    cache->v[layer].narrow(2, off, p).copy_(vt);
    kt = cache->k[layer].narrow(2, 0, off + p).to(q.scalar_type());
    vt = cache->v[layer].narrow(2, 0, off + p).to(q.scalar_type());
    for (int64_t j = 0; j < off + p; ++j) kpos.push_back(j);
  } else {
    for (int64_t j = 0; j < p; ++j) kpos.push_back(j);
  }
  const int64_t T = static_cast<int64_t>(kpos.size());
  if (K != H) {
    kt = kt.unsqueeze(2).expand({b, K, H / K, T, dh}).reshape({b, H, T, dh});
    vt = vt.unsqueeze(2).expand({b, K, H / K, T, dh}).reshape({b, H, T, dh});
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  const bool hook_scores = hooks != nullptr && hooks->active(slot(kAttnScores));
  const bool hook_pattern = hooks != nullptr && hooks->active(slot(kPattern));
  if (cache == nullptr) {  // full causal self-attention: the kernels skip the square's upper triangle
    auto qh = q.transpose(1, 2).reshape({b * H, p, dh});
    auto kh = kt.reshape({b * H, T, dh}), vh = vt.reshape({b * H, T, dh});
    torch::Tensor z;
    if (!hook_scores && !hook_pattern) {
      z = causal_attention(qh, kh, vh, scale);
    } else {  // the same arithmetic in three pieces, the hooks between them
      auto scores = causal_scores(qh, kh, scale).view({b, H, p, T});
      if (hook_scores) scores = hooks->run(slot(kAttnScores), scores, layer, off, call.info, &kpos);
      auto pattern = causal_softmax(scores.reshape({b * H, p, T})).view({b, H, p, T});
      if (hook_pattern) pattern = hooks->run(slot(kPattern), pattern, layer, off, call.info, &kpos);
      z = causal_pattern_v(pattern.reshape({b * H, p, T}), vh);
    }
    return attention_output(L, call.hook(slot(kZ), z.view({b, H, p, dh}).transpose(1, 2), layer), layer, call);
  }
  auto mask = torch::zeros({1, p, T});
  {
    auto acc = mask.accessor<float, 3>();
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < p; ++i)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t j = kpos[t];
        if (j < 0 || j > off + i || (window > 0 && j <= off + i - window)) acc[0][i][t] = ninf;
      }
  }
  if (q.scalar_type() != torch::kFloat32) mask = mask.to(q.scalar_type());  // double-precision models (tests)
  // scores = scale · q kᵀ + mask, the scale and the mask fused into the GEMM (attention_matmul splits
  // the [b·H] GEMMs across threads, single-threaded BLAS each)
  auto scores = attention_matmul(q.transpose(1, 2).reshape({b * H, p, dh}), kt.reshape({b * H, T, dh}).transpose(1, 2),
                                 scale, mask)
                    .view({b, H, p, T});
  if (hook_scores) scores = hooks->run(slot(kAttnScores), scores, layer, off, call.info, &kpos);
  auto pattern = torch::softmax(scores, -1);
  if (hook_pattern)
    pattern = hooks->run(slot(kPattern), pattern, layer, off, call.info, &kpos);
  auto z = attention_matmul(pattern.reshape({b * H, p, T}), vt.reshape({b * H, T, dh})).view({b, H, p, dh}).transpose(1, 2);
  return attention_output(L, call.hook(slot(kZ), z, layer), layer, call);
}

// z [b, p, H, dh] -> the attention block's output [b, p, d_model] (through hook_result when it is hooked)
torch::Tensor TransformerImpl::attention_output(const Layer& L, const torch::Tensor& z, int layer,
                                                const Call& call) const {
  const auto& c = cfg_;
  const int64_t b = z.size(0), p = z.size(1), H = c.n_heads, dh = c.d_head;
  HookSet* hooks = call.hooks;
  auto slot = [&](int s) { return HookRegistry::block_slot(layer, s); };
  torch::Tensor out;
  if (hooks != nullptr && hooks->active(slot(kResult))) {
    // per-head contributions [b, p, H, d_model]; only computed when asked (memory trap)
    auto wo = L.W_O.view({c.d_model, H, dh});
    auto result = call.hook(slot(kResult), torch::einsum("bphd,mhd->bphm", {z, wo}), layer);
    out = result.sum(2);
    if (L.b_O.defined()) out = out + L.b_O;
  } else {
    out = linear(z.reshape({b, p, H * dh}), L.W_O, L.b_O);
  }
  return out;
}

torch::Tensor TransformerImpl::mlp(const Layer& L, const torch::Tensor& x, int layer, const Call& call) const {
  auto slot = [&](int s) { return HookRegistry::block_slot(layer, s); };
  torch::Tensor post;
  if (cfg_.gated_mlp) {
    auto pre = call.hook(slot(kMlpPre), linear(x, L.W_gate, L.b_gate), layer);
    auto lin = call.hook(slot(kMlpPreLinear), linear(x, L.W_in, L.b_in), layer);
    post = activation(cfg_.act, pre) * lin;
  } else {
    auto pre = call.hook(slot(kMlpPre), linear(x, L.W_in, L.b_in), layer);
    post = activation(cfg_.act, pre);
  }
  post = call.hook(slot(kMlpPost), post, layer);
  return linear(post, L.W_out, L.b_out);
}

torch::Tensor TransformerImpl::run_blocks(torch::Tensor x, int from, int to, bool finish, const Call& call) const {
  const auto& c = cfg_;
  for (int l = from; l < to; ++l) {
    const Layer& L = layers_[l];
    auto slot = [&](int s) { return HookRegistry::block_slot(l, s); };
    auto resid_pre = call.hook(slot(kResidPre), x, l);
    // attention
    auto h = norm(resid_pre, L.ln1_w, L.ln1_b, call, slot(kLn1Scale), slot(kLn1Normalized), l);
    auto attn_out = call.hook(slot(kAttnOut), attention(L, h, l, call), l);
    if (c.attn_only) {
      x = call.hook(slot(kResidPost), resid_pre + attn_out, l);
      continue;
    }
    // mlp
    if (c.parallel_attn) {
      auto h2 = norm(resid_pre, L.ln2_w, L.ln2_b, call, slot(kLn2Scale), slot(kLn2Normalized), l);
      auto mlp_out = call.hook(slot(kMlpOut), mlp(L, h2, l, call), l);
      x = call.hook(slot(kResidPost), resid_pre + attn_out + mlp_out, l);
    } else {
      auto resid_mid = call.hook(slot(kResidMid), resid_pre + attn_out, l);
      auto h2 = norm(resid_mid, L.ln2_w, L.ln2_b, call, slot(kLn2Scale), slot(kLn2Normalized), l);
      auto mlp_out = call.hook(slot(kMlpOut), mlp(L, h2, l, call), l);
      x = call.hook(slot(kResidPost), resid_mid + mlp_out, l);
    }
  }
  if (!finish) return x;
  x = norm(x, lnf_w_, lnf_b_, call, registry_.global_slot(kLnFinalScale), registry_.global_slot(kLnFinalNormalized), -1);
  return call.hook(registry_.global_slot(kUnembedOut), linear(x, unembed_weight(), {}), -1);
}

int64_t TransformerImpl::check_call(const char* who, int64_t b, int64_t p, const RunOptions& run) const {
  const KVCache* cache = run.cache;
  const int64_t off = cache != nullptr ? cache->len : 0;
  const bool rolling = cache != nullptr && cache->rolling;
  if (cache != nullptr) {
    CCC_CHECK(cache->batch == b, who, ": cache holds ", cache->batch, " rows, the call has ", b);
    CCC_CHECK(rolling || off + p <= cache->capacity, who, ": ", off, " cached + ", p,
              " new positions exceed the cache capacity ", cache->capacity);
  }
  CCC_CHECK(rolling || off + p <= cfg_.n_ctx, who, ": ", off + p, " positions exceed the model context n_ctx=", cfg_.n_ctx);
  CCC_CHECK(run.info == nullptr || (run.info->batch == b && run.info->pos == p), who, ": RunInfo describes [",
            run.info == nullptr ? 0 : run.info->batch, ", ", run.info == nullptr ? 0 : run.info->pos,
            "] tokens, the call has [", b, ", ", p, "]");
  return off;
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens, const RunOptions& run) {
  const auto& c = cfg_;
  CCC_CHECK(tokens.dim() == 2, "forward: tokens must be [batch, pos], got ", tokens.sizes());
  CCC_CHECK(tokens.scalar_type() == torch::kInt64, "forward: tokens must be int64");
  const int64_t b = tokens.size(0), p = tokens.size(1);
  CCC_CHECK(p > 0, "forward: empty sequence");
  HookSet* hooks = (run.hooks != nullptr && !run.hooks->empty()) ? run.hooks : nullptr;
  if (hooks != nullptr) hooks->bind(registry_);
  KVCache* cache = run.cache;
  const int64_t off = check_call("forward", b, p, run);
  CCC_CHECK(run.stop_at_layer < 0 || run.stop_at_layer <= c.n_layers, "forward: stop_at_layer ", run.stop_at_layer,
            " past the ", c.n_layers, " blocks");
  {
    // one pass over the ids (two tensor reductions cost more than a decode step's attention for small models)
    const auto ids = tokens.to(torch::kCPU).contiguous();
    const int64_t* id = ids.data_ptr<int64_t>();
    const auto [lo, hi] = std::minmax_element(id, id + ids.numel());
    CCC_CHECK(*lo >= 0 && *hi < c.d_vocab, "forward: token id out of range [0, ", c.d_vocab, "): min ", *lo, " max ", *hi);
  }
  // one new token per row through a cache, no autograd: the decode step (transformer_decode.cpp)
  if (cache != nullptr && p == 1 && run.stop_at_layer < 0 && !torch::GradMode::is_enabled() && W_E_.is_cpu() &&
      W_E_.scalar_type() == torch::kFloat32) {
    auto logits = forward_decode(tokens, hooks, *cache, run.info);
    cache->len += 1;
    return logits;
  }
  const Call call{hooks, cache, run.info, off, c.pos == PosKind::kRotary ? rope(off, p) : Rope{}};
  // embed
  auto x = call.hook(registry_.global_slot(kEmbed), torch::embedding(W_E_, tokens), -1);  // [b, p, d_model]
  if (c.pos == PosKind::kLearned) {
    auto pe = call.hook(registry_.global_slot(kPosEmbed), W_pos_.narrow(0, off, p).unsqueeze(0).expand({b, p, c.d_model}), -1);
    x = x + pe;
  }
  const int to = run.stop_at_layer >= 0 ? run.stop_at_layer : static_cast<int>(c.n_layers);
  auto out = run_blocks(x, 0, to, run.stop_at_layer < 0, call);
  if (cache != nullptr) cache->len += p;
  return out;
}

torch::Tensor TransformerImpl::forward_from(const torch::Tensor& resid, int start_at_layer, const RunOptions& run) {
  const auto& c = cfg_;
  CCC_CHECK(resid.dim() == 3 && resid.size(2) == c.d_model, "forward_from: residual must be [batch, pos, ", c.d_model,
            "], got ", resid.sizes());
  CCC_CHECK(start_at_layer >= 0 && start_at_layer <= c.n_layers, "forward_from: start_at_layer ", start_at_layer,
            " outside [0, ", c.n_layers, "]");
  const int to = run.stop_at_layer >= 0 ? run.stop_at_layer : static_cast<int>(c.n_layers);
  CCC_CHECK(to >= start_at_layer && to <= c.n_layers, "forward_from: stop_at_layer ", to, " before start_at_layer ",
            start_at_layer);
  const int64_t b = resid.size(0), p = resid.size(1);
  KVCache* cache = run.cache;
  const int64_t off = check_call("forward_from", b, p, run);
  HookSet* hooks = (run.hooks != nullptr && !run.hooks->empty()) ? run.hooks : nullptr;
  if (hooks != nullptr) hooks->bind(registry_);
  const Call call{hooks, cache, run.info, off, c.pos == PosKind::kRotary ? rope(off, p) : Rope{}};
  auto out = run_blocks(resid, start_at_layer, to, run.stop_at_layer < 0, call);
  if (cache != nullptr) cache->len += p;
  return out;
}

std::map<std::string, torch::Tensor> TransformerImpl::state_dict() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : named_parameters(true)) out[item.key()] = item.value();
  return out;
}

void TransformerImpl::load_state_dict(const std::map<std::string, torch::Tensor>& sd, const std::string& source) {
  torch::NoGradGuard guard;
  auto params = named_parameters(true);
  for (const auto& item : params) {
    auto it = sd.find(item.key());
    CCC_CHECK(it != sd.end(), source, ": missing tensor '", item.key(), "'");
    CCC_CHECK(it->second.sizes() == item.value().sizes(), source, ": tensor '", item.key(), "' has shape ",
              it->second.sizes(), ", expected ", item.value().sizes());
    item.value().copy_(it->second);
  }
  for (const auto& [key, t] : sd)
    CCC_CHECK(params.find(key) != nullptr, source, ": unexpected tensor '", key, "' (shape ", t.sizes(), ")");
}

void TransformerImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard guard;
  auto gen = at::detail::createCPUGenerator(seed);
  const double out_std = 0.02 / std::sqrt(2.0 * cfg_.n_layers);
  for (auto& item : named_parameters(true)) {
    const auto& name = item.key();
    auto& t = item.value();
    const std::string leaf = name.substr(name.rfind('.') + 1);
    if (leaf == "w") {
      t.fill_(1.0);
    } else if (leaf[0] == 'b') {
      t.zero_();
    } else {
      t.normal_(0.0, (leaf == "W_O" || leaf == "W_out") ? out_std : 0.02, gen);
    }
  }
}

}  // namespace ccc::model
