// The decode step: one new token per row through the KV cache, no autograd, CPU fp32 — what generation,
// the compressor and every per-token sweep run. One pipeline of raw kernels (packed-weight GEMM, fused
// attention over the cache, row norms, elementwise activations) on per-thread scratch buffers, with no
// framework op between them.
//
// Hooks keep that pipeline: at a watched site the activation is copied into a fresh tensor for the
// hooks (observers and caches hold values nobody overwrites); an editor's result is copied back into
// the scratch buffer and the pipeline goes on from it. So observing never changes a single bit, an
// unwatched layer costs what it costs without hooks, and a glob that matches nothing costs nothing.
// Attention scores and patterns are only materialised when a hook asks for them (the fused kernel never
// builds them); an observed pattern is the exact softmax the kernel applies.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "model/base/error.h"
#include "model/core/transformer.h"
#include "model/kernels/decode_attention.h"
#include "model/kernels/decode_gemm.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/parallel.h"

namespace ccc::model {

namespace {

// Per-thread scratch of one decode step (groups of the compressor run on parallel threads).
struct Scratch {
  std::vector<float> x, mid, h, qkv, z, attn, mlp_a, mlp_b, mlp_out, mean, scale;
  static Scratch& get() {
    thread_local Scratch s;
    return s;
  }
};

float* sized(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Where the step's hooks are, with the call's context.
struct Sites {
  HookSet* hooks;
  const RunInfo* info;
  int64_t off;
  bool on(int slot) const { return hooks != nullptr && hooks->active(slot); }

  // Runs the hooks of `slot` on a copy of the activation at p (sizes / strides in floats). An edited
  // result is copied back into p. Returns true when the values changed hands (edited).
  bool visit(int slot, int layer, float* p, at::IntArrayRef sizes, at::IntArrayRef strides,
             const std::vector<int64_t>* key_pos = nullptr) const {
    if (!on(slot)) return false;
    auto view = torch::from_blob(p, sizes, strides, torch::kFloat32);
    auto t = torch::empty(sizes, torch::kFloat32);
    t.copy_(view);
    auto y = hooks->run(slot, t, layer, off, info, key_pos);
    if (y.is_same(t)) return false;
    view.copy_(y);
    return true;
  }
  bool visit(int slot, int layer, float* p, at::IntArrayRef sizes) const {
    if (!on(slot)) return false;
    std::vector<int64_t> strides(sizes.size(), 1);
    for (int64_t i = static_cast<int64_t>(sizes.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * sizes[i + 1];
    return visit(slot, layer, p, sizes, strides);
  }
};

void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void activate(ActKind k, const float* x, float* y, int64_t n) {
  switch (k) {
    case ActKind::kGeluTanh: gelu_tanh_forward(x, y, n); break;
    case ActKind::kGelu: gelu_erf_forward(x, y, n); break;
    case ActKind::kSilu: silu_forward(x, y, n); break;
    case ActKind::kRelu: relu_forward(x, y, n); break;
  }
}

// Norm of `in` [b, d] into h [b, d] with its two hook sites: scale [b, 1, 1] (and mean [b] for LayerNorm
// as scratch), normalized [b, 1, d]. An edited scale renormalises the rows from it.
struct DecodeNorm {
  const ModelConfig& c;
  const Sites& sites;
  int64_t b;
  float* h;      // [b, d]
  float* mean;   // [b]
  float* scale;  // [b]
  void operator()(const float* in, const torch::Tensor& w, const torch::Tensor& bias, int slot_scale, int slot_norm,
                  int layer) const {
    const int64_t d = c.d_model;
    const float eps = static_cast<float>(c.norm_eps);
    const float* wp = w.data_ptr<float>();
    const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
    const bool ln = c.norm == NormKind::kLayerNorm;
    if (ln) {
      layer_norm_rows(in, b, d, wp, bp, eps, h, mean, scale);
    } else {
      rms_norm_rows(in, b, d, wp, eps, h, scale);
    }
    if (sites.visit(slot_scale, layer, scale, {b, 1, 1})) norm_rows_from_scale(in, b, d, wp, bp, ln ? mean : nullptr, scale, h);
    sites.visit(slot_norm, layer, h, {b, 1, d});
  }
};

// This step's keys and values [b, K, dh] (inside qkv [b, (H + 2K) dh]) into slot `at` of layer l's cache
// [b, K, cap, dh] (fp16 or fp32).
void write_kv(KVCache& cache, int l, const float* qkv, int64_t b, int64_t H, int64_t K, int64_t dh, int64_t at) {
  const int64_t ld = (H + 2 * K) * dh, cap = cache.capacity;
  const bool half = cache.k[l].scalar_type() == torch::kHalf;
  CCC_CHECK(cache.k[l].is_contiguous() && cache.v[l].is_contiguous(), "decode: KV cache must be contiguous");
  for (int64_t r = 0; r < b; ++r)
    for (int64_t j = 0; j < K; ++j) {
      const int64_t dst = ((r * K + j) * cap + at) * dh;
      const float* ks = qkv + r * ld + (H + j) * dh;      // [dh]
      const float* vs = qkv + r * ld + (H + K + j) * dh;  // [dh]
      if (half) {
        float_to_half(ks, reinterpret_cast<uint16_t*>(cache.k[l].data_ptr<at::Half>()) + dst, dh);
        float_to_half(vs, reinterpret_cast<uint16_t*>(cache.v[l].data_ptr<at::Half>()) + dst, dh);
      } else {
        std::memcpy(cache.k[l].data_ptr<float>() + dst, ks, dh * sizeof(float));
        std::memcpy(cache.v[l].data_ptr<float>() + dst, vs, dh * sizeof(float));
      }
    }
}

// Attention of the queries in qkv over the n visible cache slots of layer l into z [b, H, dh]. The fused
// kernel never builds scores or patterns; when a hook watches hook_attn_scores / hook_pattern they are
// materialised ([b, H, 1, n], one column per visible slot, key_pos = each slot's model position), and an
// edited one is applied to the values instead.
void decode_attend(const KVCache& cache, int l, const float* qkv, float* z, int64_t b, int64_t H, int64_t K,
                   int64_t dh, int64_t n, int64_t off, const Sites& sites, int slot_scores, int slot_pattern) {
  const int64_t ld = (H + 2 * K) * dh, cap = cache.capacity;
  const bool half = cache.k[l].scalar_type() == torch::kHalf;
  const float sc = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh)));
  const void* kc = half ? static_cast<const void*>(cache.k[l].data_ptr<at::Half>()) : cache.k[l].data_ptr<float>();
  const void* vc = half ? static_cast<const void*>(cache.v[l].data_ptr<at::Half>()) : cache.v[l].data_ptr<float>();
  bool pattern_edited = false;
  if (sites.on(slot_scores) || sites.on(slot_pattern)) {
    std::vector<int64_t> kpos(n);
    for (int64_t t = 0; t < n; ++t) kpos[t] = cache.rolling ? off - ((off - t) % cap + cap) % cap : t;
    auto scores = torch::empty({b, H, 1, n});
    auto pattern = torch::empty({b, H, 1, n});
    if (half)
      decode_attention_probs(qkv, static_cast<const uint16_t*>(kc), b, H, K, cap, n, dh, sc, ld,
                             scores.data_ptr<float>(), pattern.data_ptr<float>());
    else
      decode_attention_probs(qkv, static_cast<const float*>(kc), b, H, K, cap, n, dh, sc, ld,
                             scores.data_ptr<float>(), pattern.data_ptr<float>());
    if (sites.on(slot_scores)) {
      auto edited = sites.hooks->run(slot_scores, scores, l, off, sites.info, &kpos);
      if (!edited.is_same(scores)) {
        pattern = torch::softmax(edited.to(torch::kFloat32), -1).contiguous();
        pattern_edited = true;
      }
    }
    if (sites.on(slot_pattern)) {
      auto edited = sites.hooks->run(slot_pattern, pattern, l, off, sites.info, &kpos);
      if (!edited.is_same(pattern)) {
        pattern = edited.to(torch::kFloat32).contiguous();
        pattern_edited = true;
      }
    }
    if (pattern_edited) {
      if (half)
        decode_attention_apply(pattern.data_ptr<float>(), static_cast<const uint16_t*>(vc), z, b, H, K, cap, n, dh);
      else
        decode_attention_apply(pattern.data_ptr<float>(), static_cast<const float*>(vc), z, b, H, K, cap, n, dh);
    }
  }
  if (pattern_edited) return;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, 2 * n * dh));
  parallel_ranges(b * H, grain, [&](int64_t t0, int64_t t1) {
    if (half)
      decode_attention(qkv, static_cast<const uint16_t*>(kc), static_cast<const uint16_t*>(vc), z, b, H, K, cap, n, dh,
                       sc, ld, t0, t1);
    else
      decode_attention(qkv, static_cast<const float*>(kc), static_cast<const float*>(vc), z, b, H, K, cap, n, dh, sc,
                       ld, t0, t1);
  });
}


}  // namespace

torch::Tensor TransformerImpl::forward_decode(const torch::Tensor& tokens, HookSet* hooks, KVCache& cache,
                                              const RunInfo* info) const {
  torch::NoGradGuard no_grad;
  const auto& c = cfg_;
  const int64_t b = tokens.size(0), d = c.d_model, H = c.n_heads, K = c.n_kv_heads, dh = c.d_head;
  const int64_t ld = (H + 2 * K) * dh, off = cache.len, cap = cache.capacity;
  const int64_t at = cache.rolling ? off % cap : off;               // the slot this token's key goes to
  const int64_t n = cache.rolling ? std::min(off + 1, cap) : off + 1;  // slots visible to the query
  const Sites sites{hooks, info, off};
  Scratch& s = Scratch::get();
  float* x = sized(s.x, b * d);      // [b, d] the residual stream
  float* mid = sized(s.mid, b * d);  // [b, d] resid_mid (sequential blocks)
  float* h = sized(s.h, b * d);      // [b, d] the normalised stream a sub-layer reads
  float* mean = sized(s.mean, b);    // [b] LayerNorm's row means
  float* scale = sized(s.scale, b);  // [b] the norms' row scales (hook_scale)
  const auto tok = tokens.contiguous();  // [b, 1]
  const int64_t* ids = tok.data_ptr<int64_t>();

  const DecodeNorm norm{c, sites, b, h, mean, scale};
  // GEMMs and attention split across decode_threads() (panels / (row, head) pairs; same arithmetic)
  auto gemm = [&](const float* in, int64_t rows, int64_t ldx, const torch::Tensor& w, const torch::Tensor& bias, float* out) {
    const auto pw = packed(w);
    const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, rows * pw->k * 16));
    parallel_ranges(packed_panels(*pw), grain, [&](int64_t p0, int64_t p1) {
      packed_linear(in, rows, ldx, *pw, bp, out, p0, p1);
    });
  };

  // embed
  {
    const float* we = W_E_.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) std::memcpy(x + r * d, we + ids[r] * d, d * sizeof(float));
    sites.visit(registry_.global_slot(kEmbed), -1, x, {b, 1, d});
    if (c.pos == PosKind::kLearned) {
      float* pe = h;  // [b, d] the position row broadcast (h as scratch)
      const float* wp = W_pos_.data_ptr<float>() + off * d;
      for (int64_t r = 0; r < b; ++r) std::memcpy(pe + r * d, wp, d * sizeof(float));
      sites.visit(registry_.global_slot(kPosEmbed), -1, pe, {b, 1, d});
      add(x, pe, x, b * d);
    }
  }
  const Rope rp = c.pos == PosKind::kRotary ? rope(off, 1) : Rope{};
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    auto slot = [&](int site) { return HookRegistry::block_slot(l, site); };
    sites.visit(slot(kResidPre), l, x, {b, 1, d});
    // attention
    norm(x, L.ln1_w, L.ln1_b, slot(kLn1Scale), slot(kLn1Normalized), l);
    float* qkv = sized(s.qkv, b * ld);  // [b, (H + 2K) dh]: q [H, dh], k [K, dh], v [K, dh] per row
    gemm(h, b, d, L.W_qkv, L.b_qkv, qkv);
    sites.visit(slot(kQ), l, qkv, {b, 1, H, dh}, {ld, ld, dh, 1});
    sites.visit(slot(kK), l, qkv + H * dh, {b, 1, K, dh}, {ld, ld, dh, 1});
    sites.visit(slot(kV), l, qkv + (H + K) * dh, {b, 1, K, dh}, {ld, ld, dh, 1});
    if (c.pos == PosKind::kRotary) {
      rotate_heads_inplace(qkv, b, ld, H + K, dh, c.rotary_dim, rp.first.data_ptr<float>(), rp.second.data_ptr<float>());
      sites.visit(slot(kRotQ), l, qkv, {b, 1, H, dh}, {ld, ld, dh, 1});
      sites.visit(slot(kRotK), l, qkv + H * dh, {b, 1, K, dh}, {ld, ld, dh, 1});
    }
    // keys and values into the cache slot, then the query over the visible slots
    write_kv(cache, l, qkv, b, H, K, dh, at);
    float* z = sized(s.z, b * H * dh);  // [b, H, dh]
    decode_attend(cache, l, qkv, z, b, H, K, dh, n, off, sites, slot(kAttnScores), slot(kPattern));
    sites.visit(slot(kZ), l, z, {b, 1, H, dh});
    float* attn = sized(s.attn, b * d);  // [b, d] hook_attn_out
    bool result_edited = false;
    if (sites.on(slot(kResult))) {
      // per-head contributions [b, 1, H, d_model], only when named; the output sums them when edited
      auto zt = torch::from_blob(z, {b, 1, H, dh}, torch::kFloat32);
      auto result = torch::einsum("bphd,mhd->bphm", {zt, L.W_O.view({d, H, dh})}).contiguous();
      auto edited = hooks->run(slot(kResult), result, l, off, info);
      if (!edited.is_same(result)) {
        auto out = edited.to(torch::kFloat32).sum(2);
        if (L.b_O.defined()) out = out + L.b_O;
        torch::from_blob(attn, {b, 1, d}, torch::kFloat32).copy_(out);
        result_edited = true;
      }
    }
    if (!result_edited) gemm(z, b, H * dh, L.W_O, L.b_O, attn);
    sites.visit(slot(kAttnOut), l, attn, {b, 1, d});
    if (c.attn_only) {
      add(x, attn, x, b * d);
      sites.visit(slot(kResidPost), l, x, {b, 1, d});
      continue;
    }
    // mlp (parallel blocks normalise resid_pre, sequential ones resid_mid)
    if (c.parallel_attn) {
      norm(x, L.ln2_w, L.ln2_b, slot(kLn2Scale), slot(kLn2Normalized), l);
    } else {
      add(x, attn, mid, b * d);
      sites.visit(slot(kResidMid), l, mid, {b, 1, d});
      norm(mid, L.ln2_w, L.ln2_b, slot(kLn2Scale), slot(kLn2Normalized), l);
    }
    const int64_t m = c.d_mlp;
    float* a = sized(s.mlp_a, b * m);     // [b, d_mlp] hook_pre (the gate when gated)
    float* post = sized(s.mlp_b, b * m);  // [b, d_mlp] hook_pre_linear, then hook_post
    if (c.gated_mlp) {
      gemm(h, b, d, L.W_gate, L.b_gate, a);
      sites.visit(slot(kMlpPre), l, a, {b, 1, m});
      gemm(h, b, d, L.W_in, L.b_in, post);
      sites.visit(slot(kMlpPreLinear), l, post, {b, 1, m});
      activate(c.act, a, a, b * m);
      for (int64_t i = 0; i < b * m; ++i) post[i] = a[i] * post[i];
    } else {
      gemm(h, b, d, L.W_in, L.b_in, a);
      sites.visit(slot(kMlpPre), l, a, {b, 1, m});
      activate(c.act, a, post, b * m);
    }
    sites.visit(slot(kMlpPost), l, post, {b, 1, m});
    float* mlp_out = sized(s.mlp_out, b * d);  // [b, d] hook_mlp_out
    gemm(post, b, m, L.W_out, L.b_out, mlp_out);
    sites.visit(slot(kMlpOut), l, mlp_out, {b, 1, d});
    if (c.parallel_attn) {
      add(x, attn, x, b * d);  // (resid_pre + attn_out) + mlp_out, the full path's order
      add(x, mlp_out, x, b * d);
    } else {
      add(mid, mlp_out, x, b * d);
    }
    sites.visit(slot(kResidPost), l, x, {b, 1, d});
  }
  norm(x, lnf_w_, lnf_b_, registry_.global_slot(kLnFinalScale), registry_.global_slot(kLnFinalNormalized), -1);
  auto logits = torch::empty({b, 1, c.d_vocab_out});  // [b, 1, d_vocab_out]
  gemm(h, b, d, unembed_weight(), {}, logits.data_ptr<float>());
  if (sites.on(registry_.global_slot(kUnembedOut))) logits = hooks->run(registry_.global_slot(kUnembedOut), logits, -1, off, info);
  return logits;
}

}  // namespace ccc::model
