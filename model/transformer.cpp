#include "model/transformer.h"

#include <cmath>

#include "model/fused_ops.h"
#include "model/decode_attention.h"
#include "model/decode_gemm.h"
#include "model/error.h"

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
// z [b, H·dh] = attention of one query per row (rows `ldq` floats apart) over slots [0, n) of the cache.
void attend_cache(const float* q, int64_t ldq, const KVCache& cache, int layer, int64_t n, int64_t H, int64_t dh,
                  float* z) {
  const auto& k = cache.k[layer];
  const auto& v = cache.v[layer];
  const int64_t b = k.size(0), K = k.size(1), cap = k.size(2);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
  if (k.scalar_type() == torch::kHalf)
    decode_attention(q, reinterpret_cast<const uint16_t*>(k.data_ptr<at::Half>()),
                     reinterpret_cast<const uint16_t*>(v.data_ptr<at::Half>()), z, b, H, K, cap, n, dh, scale, ldq);
  else
    decode_attention(q, k.data_ptr<float>(), v.data_ptr<float>(), z, b, H, K, cap, n, dh, scale, ldq);
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
      if (has) registry_.names[HookRegistry::block_slot(l, s)] = "blocks." + std::to_string(l) + "." + kBlockSiteNames[s];
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
                                    HookSet* hooks, int slot_scale, int slot_norm, int layer, int64_t off) const {
  torch::Tensor y;
  if (cfg_.norm == NormKind::kLayerNorm) {
    // Fused kernel (one pass forward and backward); hook_scale = sqrt(var + eps) = 1 / rstd. The output
    // is recomputed from the scale only when an editor replaced it, so observing never changes numerics.
    auto [out, mean, rstd] = torch::native_layer_norm(x, {cfg_.d_model}, w, b, cfg_.norm_eps);
    y = out;
    if (hooks != nullptr && hooks->active(slot_scale)) {
      auto scale = rstd.reciprocal();  // [b, p, 1]
      auto edited = hooks->run(slot_scale, scale, layer, off);
      if (!edited.is_same(scale)) {
        y = (x - mean) / edited * w;
        if (b.defined()) y = y + b;
      }
    }
  } else {
    auto scale = (x.square().mean(-1, true) + cfg_.norm_eps).sqrt();  // [b, p, 1]
    scale = hook(hooks, slot_scale, scale, layer, off);
    y = x / scale * w;
  }
  return hook(hooks, slot_norm, y, layer, off);
}

std::pair<torch::Tensor, torch::Tensor> TransformerImpl::rope(int64_t off, int64_t p) const {
  if (off + p <= cfg_.n_ctx) return {rope_cos_.narrow(0, off, p), rope_sin_.narrow(0, off, p)};
  // rolling cache past n_ctx: the same double-precision formula as the tables
  auto freqs = torch::outer(torch::arange(off, off + p, torch::kFloat64), rope_inv_);
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(torch::kFloat32), emb.sin().to(torch::kFloat32)};
}

torch::Tensor TransformerImpl::linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                                      bool decode) const {
  if (!decode) return F::linear(x, w, b);
  const int64_t n = w.size(0), k = w.size(1);
  std::shared_ptr<const PackedLinear> packed;
  {
    const PackKey key{w.data_ptr(), n, k};
    std::lock_guard<std::mutex> lock(packs_->mu);
    auto& slot = packs_->packed[key];
    if (!slot.second || slot.first != w._version()) {
      auto wc = w.contiguous();
      slot = {w._version(), std::make_shared<const PackedLinear>(pack_linear(wc.data_ptr<float>(), n, k))};
    }
    packed = slot.second;
  }
  auto x2 = x.reshape({-1, k}).contiguous();  // [rows, k]
  auto y = torch::empty({x2.size(0), n});
  auto bc = b.defined() ? b.contiguous() : b;
  packed_linear(x2.data_ptr<float>(), x2.size(0), k, *packed, bc.defined() ? bc.data_ptr<float>() : nullptr,
                y.data_ptr<float>());
  auto shape = x.sizes().vec();
  shape.back() = n;
  return y.view(shape);
}

torch::Tensor TransformerImpl::attention(const Layer& L, const torch::Tensor& x, int layer, int64_t off,
                                         KVCache* cache, HookSet* hooks, bool decode, const Rope& rope) const {
  const auto& c = cfg_;
  const int64_t b = x.size(0), p = x.size(1), H = c.n_heads, K = c.n_kv_heads, dh = c.d_head;
  auto slot = [&](int s) { return HookRegistry::block_slot(layer, s); };
  // qkv
  auto qkv = linear(x, L.W_qkv, L.b_qkv, decode);  // [b, p, (H+2K)*dh]
  if (decode && hooks == nullptr && c.pos != PosKind::kLearned && cache->k[layer].is_contiguous()) {
    // one token per row, nobody watching: rotary in place on the fresh qkv buffer, keys and values
    // written to the cache slot, the fused kernel reading q where it lies (no per-head tensors)
    const int64_t cap = cache->capacity, at = cache->rolling ? off % cap : off;
    const int64_t n = cache->rolling ? std::min(off + 1, cap) : off + 1, ld = (H + 2 * K) * dh;
    float* base = qkv.data_ptr<float>();
    if (c.pos == PosKind::kRotary) {
      rotate_heads_inplace(base, b, ld, H + K, dh, c.rotary_dim, rope.first.data_ptr<float>(),
                           rope.second.data_ptr<float>());
    }
    auto rows = qkv.view({b, ld});
    cache->k[layer].select(2, at).copy_(rows.narrow(1, H * dh, K * dh).view({b, K, dh}));
    cache->v[layer].select(2, at).copy_(rows.narrow(1, (H + K) * dh, K * dh).view({b, K, dh}));
    auto z = torch::empty({b, H * dh});
    attend_cache(base, ld, *cache, layer, n, H, dh, z.data_ptr<float>());
    return linear(z.view({b, 1, H * dh}), L.W_O, L.b_O, decode);
  }
  // split (not narrow): its backward writes the three gradients into one buffer in a single pass
  auto parts = qkv.split_with_sizes({H * dh, K * dh, K * dh}, -1);
  auto q = hook(hooks, slot(kQ), parts[0].view({b, p, H, dh}), layer, off);
  auto k = hook(hooks, slot(kK), parts[1].view({b, p, K, dh}), layer, off);
  auto v = hook(hooks, slot(kV), parts[2].view({b, p, K, dh}), layer, off);
  if (c.pos == PosKind::kRotary) {
    q = hook(hooks, slot(kRotQ), rotary_embed(q, rope.first, rope.second), layer, off);
    k = hook(hooks, slot(kRotK), rotary_embed(k, rope.first, rope.second), layer, off);
  }
  torch::Tensor z;  // [b, p, H, dh]
  const bool need_scores = hooks != nullptr && (hooks->active(slot(kAttnScores)) || hooks->active(slot(kPattern)));
  if (cache != nullptr && p == 1 && !need_scores && q.scalar_type() == torch::kFloat32 && q.device().is_cpu()) {
    // one token per row: fused kernel over the cached slots, no [b, H, 1, T] tensors
    const int64_t cap = cache->capacity, at = cache->rolling ? off % cap : off;
    cache->k[layer].select(2, at).copy_(k.select(1, 0));
    cache->v[layer].select(2, at).copy_(v.select(1, 0));
    const int64_t n = cache->rolling ? std::min(off + 1, cap) : off + 1;
    auto qc = q.contiguous();
    z = torch::empty({b, 1, H, dh});
    attend_cache(qc.data_ptr<float>(), H * dh, *cache, layer, n, H, dh, z.data_ptr<float>());
  } else {
    // keys and values of all visible positions [b, K, T, dh] and the additive mask [1, p, T]: query i sits
    // at absolute position off + i and sees key position j when j <= off + i (and, rolling, j > off + i - cap)
    auto kt = k.transpose(1, 2), vt = v.transpose(1, 2);
    std::vector<int64_t> kpos;  // absolute position of each key, -1 = empty slot
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
    auto mask = torch::zeros({1, p, T});
    {
      auto m = mask.accessor<float, 3>();
      const float ninf = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < p; ++i)
        for (int64_t t = 0; t < T; ++t) {
          const int64_t j = kpos[t];
          if (j < 0 || j > off + i || (window > 0 && j <= off + i - window)) m[0][i][t] = ninf;
        }
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    // scores = scale · q kᵀ + mask, the scale and the mask fused into the GEMM (attention_matmul splits
    // the [b·H] GEMMs across threads, single-threaded BLAS each)
    auto scores = attention_matmul(q.transpose(1, 2).reshape({b * H, p, dh}), kt.reshape({b * H, T, dh}).transpose(1, 2),
                                   scale, mask)
                      .view({b, H, p, T});
    scores = hook(hooks, slot(kAttnScores), scores, layer, off);
    auto pattern = hook(hooks, slot(kPattern), torch::softmax(scores, -1), layer, off);
    z = attention_matmul(pattern.reshape({b * H, p, T}), vt.reshape({b * H, T, dh})).view({b, H, p, dh}).transpose(1, 2);
  }
  z = hook(hooks, slot(kZ), z, layer, off);
  torch::Tensor out;
  if (hooks != nullptr && hooks->active(slot(kResult))) {
    // per-head contributions [b, p, H, d_model]; only computed when asked (memory trap)
    auto wo = L.W_O.view({c.d_model, H, dh});
    auto result = torch::einsum("bphd,mhd->bphm", {z, wo});
    result = hooks->run(slot(kResult), result, layer, off);
    out = result.sum(2);
    if (L.b_O.defined()) out = out + L.b_O;
  } else {
    out = linear(z.reshape({b, p, H * dh}), L.W_O, L.b_O, decode);
  }
  return out;
}

torch::Tensor TransformerImpl::mlp(const Layer& L, const torch::Tensor& x, int layer, int64_t off,
                                   HookSet* hooks, bool decode) const {
  auto slot = [&](int s) { return HookRegistry::block_slot(layer, s); };
  torch::Tensor post;
  if (cfg_.gated_mlp) {
    auto pre = hook(hooks, slot(kMlpPre), linear(x, L.W_gate, L.b_gate, decode), layer, off);
    auto lin = hook(hooks, slot(kMlpPreLinear), linear(x, L.W_in, L.b_in, decode), layer, off);
    post = activation(cfg_.act, pre) * lin;
  } else {
    auto pre = hook(hooks, slot(kMlpPre), linear(x, L.W_in, L.b_in, decode), layer, off);
    post = activation(cfg_.act, pre);
  }
  post = hook(hooks, slot(kMlpPost), post, layer, off);
  return linear(post, L.W_out, L.b_out, decode);
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
  const int64_t off = cache != nullptr ? cache->len : 0;
  const bool rolling = cache != nullptr && cache->rolling;
  if (cache != nullptr) {
    CCC_CHECK(cache->batch == b, "forward: cache holds ", cache->batch, " rows, tokens have ", b);
    CCC_CHECK(rolling || off + p <= cache->capacity, "forward: ", off, " cached + ", p,
              " new positions exceed the cache capacity ", cache->capacity);
  }
  CCC_CHECK(rolling || off + p <= c.n_ctx, "forward: ", off + p, " positions exceed the model context n_ctx=", c.n_ctx);
  if (tokens.numel() > 0) {
    const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    CCC_CHECK(lo >= 0 && hi < c.d_vocab, "forward: token id out of range [0, ", c.d_vocab, "): min ", lo, " max ", hi);
  }
  // one new token per row through a cache, no autograd: packed-weight GEMMs (decode_gemm.h)
  const bool decode = cache != nullptr && p == 1 && !torch::GradMode::is_enabled() && W_E_.is_cpu() &&
                      W_E_.scalar_type() == torch::kFloat32;
  const Rope rope = c.pos == PosKind::kRotary ? this->rope(off, p) : Rope{};  // cos, sin [p, rotary_dim], once
  // embed
  auto x = hook(hooks, registry_.global_slot(kEmbed), torch::embedding(W_E_, tokens), -1, off);  // [b, p, d_model]
  if (c.pos == PosKind::kLearned) {
    auto pe = hook(hooks, registry_.global_slot(kPosEmbed), W_pos_.narrow(0, off, p).unsqueeze(0).expand({b, p, c.d_model}),
                   -1, off);
    x = x + pe;
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    auto slot = [&](int s) { return HookRegistry::block_slot(l, s); };
    auto resid_pre = hook(hooks, slot(kResidPre), x, l, off);
    // attention
    auto h = norm(resid_pre, L.ln1_w, L.ln1_b, hooks, slot(kLn1Scale), slot(kLn1Normalized), l, off);
    auto attn_out = hook(hooks, slot(kAttnOut), attention(L, h, l, off, cache, hooks, decode, rope), l, off);
    if (c.attn_only) {
      x = hook(hooks, slot(kResidPost), resid_pre + attn_out, l, off);
      continue;
    }
    // mlp
    if (c.parallel_attn) {
      auto h2 = norm(resid_pre, L.ln2_w, L.ln2_b, hooks, slot(kLn2Scale), slot(kLn2Normalized), l, off);
      auto mlp_out = hook(hooks, slot(kMlpOut), mlp(L, h2, l, off, hooks, decode), l, off);
      x = hook(hooks, slot(kResidPost), resid_pre + attn_out + mlp_out, l, off);
    } else {
      auto resid_mid = hook(hooks, slot(kResidMid), resid_pre + attn_out, l, off);
      auto h2 = norm(resid_mid, L.ln2_w, L.ln2_b, hooks, slot(kLn2Scale), slot(kLn2Normalized), l, off);
      auto mlp_out = hook(hooks, slot(kMlpOut), mlp(L, h2, l, off, hooks, decode), l, off);
      x = hook(hooks, slot(kResidPost), resid_mid + mlp_out, l, off);
    }
  }
  x = norm(x, lnf_w_, lnf_b_, hooks, registry_.global_slot(kLnFinalScale), registry_.global_slot(kLnFinalNormalized),
           -1, off);
  auto W_U = c.tied_embed ? (c.d_vocab_out == c.d_vocab ? W_E_ : W_E_.narrow(0, 0, c.d_vocab_out)) : W_U_;
  auto logits = hook(hooks, registry_.global_slot(kUnembedOut), linear(x, W_U, {}, decode), -1, off);
  if (cache != nullptr) cache->len += p;
  return logits;
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
