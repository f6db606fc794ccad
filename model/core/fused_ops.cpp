#include "model/core/fused_ops.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <limits>
#include <thread>
#include <vector>

#include "model/kernels/blas_threads.h"
#include "model/kernels/elementwise.h"

namespace ccc::model {

namespace {

// Runs fn(begin, end) over [0, n) split into one contiguous range per intra-op thread, on std::threads
// that inherit the caller's grad / inference mode. (at::parallel_for is inline `#pragma omp parallel` in
// LibTorch's OpenMP headers, and ccc is not compiled with -fopenmp: it would run these loops serially.)
template <typename Fn>
void split_threads(int64_t n, Fn&& fn) {
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(n, at::get_num_threads()));
  const at::ThreadLocalState state;
  auto run = [&](int64_t w) {
    at::ThreadLocalStateGuard guard(state);
    fn(n * w / workers, n * (w + 1) / workers);
  };
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
}

bool fast_ok(const torch::Tensor& t) { return t.is_cpu() && t.scalar_type() == torch::kFloat32; }

// One pass over [rows = b*p*heads, dh]; `inverse` applies the transpose (the backward).
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool inverse) {
  auto xc = x.contiguous();
  auto cc = cos.contiguous(), sc = sin.contiguous();
  const int64_t b = xc.size(0), p = xc.size(1), heads = xc.size(2), dh = xc.size(3), rd = cc.size(1);
  // written as [b, heads, p, dh] memory (returned as the [b, p, heads, dh] view): attention's
  // transpose(1, 2) of q and k is then free instead of a copy
  auto out = torch::empty({b, heads, p, dh}, xc.options()).transpose(1, 2);
  const float* xp = xc.data_ptr<float>();
  const float* cp = cc.data_ptr<float>();
  const float* sp = sc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  split_threads(b * p, [&](int64_t s, int64_t e) {
    for (int64_t bp = s; bp < e; ++bp) {
      const float* c = cp + (bp % p) * rd;
      const float* si = sp + (bp % p) * rd;
      for (int64_t h = 0; h < heads; ++h) {
        const float* in = xp + (bp * heads + h) * dh;
        float* o = op + (((bp / p) * heads + h) * p + bp % p) * dh;
        rotate_half(in, o, c, si, rd, inverse);
        for (int64_t i = rd; i < dh; ++i) o[i] = in[i];
      }
    }
  });
  return out;
}

// out[n] = alpha · a[n] @ b[n] (+ add, broadcast over n, when defined). The batch is split across threads,
// each slice computed by single-threaded GEMMs.
torch::Tensor bmm_split(const torch::Tensor& a, const torch::Tensor& b, double alpha, const torch::Tensor& add) {
  const int64_t n = a.size(0);
  auto out = add.defined() ? add.expand({n, a.size(1), b.size(2)}).contiguous()
                           : torch::zeros({n, a.size(1), b.size(2)}, a.options());  // beta 0 still reads it on tiny shapes
  ScopedBlasThreads one(1);
  split_threads(n, [&](int64_t s, int64_t e) {
    torch::NoGradGuard no_grad;
    auto o = out.narrow(0, s, e - s);
    o.baddbmm_(a.narrow(0, s, e - s), b.narrow(0, s, e - s), add.defined() ? 1.0 : 0.0, alpha);
  });
  return out;
}

class ScaledBmm : public torch::autograd::Function<ScaledBmm> {
 public:
  // `add` is a placeholder (not added) unless has_add: custom functions take no undefined tensors
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& add, double alpha, bool has_add) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["alpha"] = alpha;
    return bmm_split(a, b, alpha, has_add ? add : torch::Tensor());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const double alpha = ctx->saved_data["alpha"].toDouble();
    auto g = grads[0].contiguous();
    torch::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = bmm_split(g, saved[1].transpose(1, 2), alpha, {});
    if (ctx->needs_input_grad(1)) gb = bmm_split(saved[0].transpose(1, 2), g, alpha, {});
    return {ga, gb, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Causal attention of one [T, dh] item in query blocks of kCausalBlock rows: a block's GEMMs stop at its
// last row's key, so the square's upper triangle is skipped but for half a block on the diagonal
// (T = 1024: 56% of the square's FLOPs). The fused kernel and the hooked pieces below call the same
// primitives with the same shapes, so an observer on the scores or the pattern changes no bit.
constexpr int64_t kCausalBlock = 128;

int64_t block_end(int64_t r0, int64_t T) { return std::min(T, r0 + kCausalBlock); }

// the block of query rows [r0, r1): sb (row stride T, first row = row r0), columns [0, r1) = scale · q kᵀ
void block_scores(const float* q, const float* k, float scale, int64_t T, int64_t dh, int64_t r0, float* sb) {
  const int64_t r1 = block_end(r0, T);
  sgemm_row_major(false, true, r1 - r0, r1, dh, scale, q + r0 * dh, dh, k, dh, 0.0f, sb, T);
}

// row[0, n) <- softmax (exps from softmax_numerators, a sequential sum, one reciprocal); row[n, end) <- 0
void softmax_row(float* row, int64_t n, int64_t end) {
  softmax_numerators(row, n, row);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += row[j];
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  for (int64_t j = n; j < end; ++j) row[j] = 0.0f;
}

// z rows [r0, r1) = pattern block pb (row stride T, first row = row r0) · v, over keys [0, keys)
void block_pv(const float* pb, const float* v, int64_t T, int64_t dh, int64_t r0, int64_t keys, float* z) {
  sgemm_row_major(false, false, block_end(r0, T) - r0, dh, keys, 1.0f, pb, T, v, dh, 0.0f, z + r0 * dh, dh);
}

// Forward of one item, z [T, dh] = p v. With `keep`, p [T, T] gets the causal softmax rows (row i:
// columns <= i, zeros to its block's end; later columns are not written); without, p is one block's
// [kCausalBlock, T] scratch.
void causal_forward_item(const float* q, const float* k, const float* v, float scale, int64_t T, int64_t dh, float* p,
                         bool keep, float* z) {
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlock) {
    const int64_t r1 = block_end(r0, T);
    float* pb = keep ? p + r0 * T : p;
    block_scores(q, k, scale, T, dh, r0, pb);
    for (int64_t i = r0; i < r1; ++i) softmax_row(pb + (i - r0) * T, i + 1, r1);
    block_pv(pb, v, T, dh, r0, r1, z);
  }
}

// Backward of one item; gq is overwritten, gk and gv must hold zeros. ds: [kCausalBlock, T] scratch.
void causal_backward_item(const float* q, const float* k, const float* v, const float* p, const float* gz, float scale,
                          int64_t T, int64_t dh, float* gq, float* gk, float* gv, float* ds) {
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlock) {
    const int64_t r1 = block_end(r0, T), m = r1 - r0;
    const float* pb = p + r0 * T;
    sgemm_row_major(false, true, m, r1, dh, 1.0f, gz + r0 * dh, dh, v, dh, 0.0f, ds, T);  // d pattern
    for (int64_t i = 0; i < m; ++i) {  // d scores = p (dp - Σ_j p dp), before the scale
      const float* pr = pb + i * T;
      float* dr = ds + i * T;
      const int64_t n = r0 + i + 1;
      float dot = 0.0f;
      for (int64_t j = 0; j < n; ++j) dot += pr[j] * dr[j];
      for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - dot);
      for (int64_t j = n; j < r1; ++j) dr[j] = 0.0f;
    }
    sgemm_row_major(false, false, m, dh, r1, scale, ds, T, k, dh, 0.0f, gq + r0 * dh, dh);
    sgemm_row_major(true, false, r1, dh, m, scale, ds, T, q + r0 * dh, dh, 1.0f, gk, dh);
    sgemm_row_major(true, false, r1, dh, m, 1.0f, pb, T, gz + r0 * dh, dh, 1.0f, gv, dh);
  }
}

// Runs fn(item, scratch) for each of n items split across threads, single-threaded BLAS each; each thread
// owns `scratch_floats` floats of scratch for all its items (the kernels write it before reading it).
template <typename Fn>
void per_item(int64_t n, int64_t scratch_floats, Fn&& fn) {
  ScopedBlasThreads one(1);
  split_threads(n, [&](int64_t s, int64_t e) {
    std::vector<float> scratch(static_cast<size_t>(scratch_floats));
    for (int64_t i = s; i < e; ++i) fn(i, scratch.data());
  });
}

// one query block's rows of pattern or its gradient: [min(T, kCausalBlock), T]
int64_t block_scratch(int64_t T) { return std::min(T, kCausalBlock) * T; }

class CausalAttention : public torch::autograd::Function<CausalAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, double scale) {
    auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    const int64_t n = qc.size(0), T = qc.size(1), dh = qc.size(2);
    auto p = torch::empty({n, T, T}, qc.options());
    auto z = torch::empty({n, T, dh}, qc.options());
    per_item(n, 0, [&](int64_t i, float*) {
      causal_forward_item(qc.data_ptr<float>() + i * T * dh, kc.data_ptr<float>() + i * T * dh,
                          vc.data_ptr<float>() + i * T * dh, static_cast<float>(scale), T, dh,
                          p.data_ptr<float>() + i * T * T, true, z.data_ptr<float>() + i * T * dh);
    });
    ctx->save_for_backward({qc, kc, vc, p});
    ctx->saved_data["scale"] = scale;
    return z;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &p = saved[3];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto gz = grads[0].contiguous();
    const int64_t n = q.size(0), T = q.size(1), dh = q.size(2);
    auto gq = torch::empty_like(q), gk = torch::zeros_like(k), gv = torch::zeros_like(v);
    per_item(n, block_scratch(T), [&](int64_t i, float* ds) {
      causal_backward_item(q.data_ptr<float>() + i * T * dh, k.data_ptr<float>() + i * T * dh,
                           v.data_ptr<float>() + i * T * dh, p.data_ptr<float>() + i * T * T,
                           gz.data_ptr<float>() + i * T * dh, scale, T, dh, gq.data_ptr<float>() + i * T * dh,
                           gk.data_ptr<float>() + i * T * dh, gv.data_ptr<float>() + i * T * dh, ds);
    });
    return {gq, gk, gv, torch::Tensor()};
  }
};

// The hooked pieces: scores [n, T, T] (−inf above the diagonal), softmax, pattern · v. Forwards share the
// fused kernel's primitives; backwards are the plain formulas on the whole square.
class CausalScores : public torch::autograd::Function<CausalScores> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               double scale) {
    auto qc = q.contiguous(), kc = k.contiguous();
    const int64_t n = qc.size(0), T = qc.size(1), dh = qc.size(2);
    auto s = torch::empty({n, T, T}, qc.options());
    const float ninf = -std::numeric_limits<float>::infinity();
    per_item(n, 0, [&](int64_t i, float*) {
      float* si = s.data_ptr<float>() + i * T * T;
      for (int64_t r0 = 0; r0 < T; r0 += kCausalBlock) {
        block_scores(qc.data_ptr<float>() + i * T * dh, kc.data_ptr<float>() + i * T * dh, static_cast<float>(scale), T,
                     dh, r0, si + r0 * T);
        for (int64_t r = r0; r < block_end(r0, T); ++r) std::fill(si + r * T + r + 1, si + (r + 1) * T, ninf);
      }
    });
    ctx->save_for_backward({qc, kc});
    ctx->saved_data["scale"] = scale;
    return s;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    auto g = grads[0].contiguous();
    return {bmm_split(g, saved[1], scale, {}), bmm_split(g.transpose(1, 2), saved[0], scale, {}), torch::Tensor()};
  }
};

class CausalSoftmax : public torch::autograd::Function<CausalSoftmax> {
 public:
  // each row over its columns up to the last score above −inf (the diagonal, unless an editor wrote past it)
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& scores) {
    auto p = scores.clone(at::MemoryFormat::Contiguous);
    const int64_t n = p.size(0), T = p.size(1);
    const float ninf = -std::numeric_limits<float>::infinity();
    per_item(n, 0, [&](int64_t i, float*) {
      for (int64_t r = 0; r < T; ++r) {
        float* row = p.data_ptr<float>() + (i * T + r) * T;
        int64_t end = T;
        while (end > 1 && row[end - 1] == ninf) --end;
        softmax_row(row, end, T);
      }
    });
    ctx->save_for_backward({p});
    return p;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto p = ctx->get_saved_variables()[0];
    auto pg = p * grads[0];
    return {pg - p * pg.sum(-1, true)};
  }
};

class CausalPatternV : public torch::autograd::Function<CausalPatternV> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& pattern,
                               const torch::Tensor& v) {
    auto pc = pattern.contiguous(), vc = v.contiguous();
    const int64_t n = pc.size(0), T = pc.size(1), dh = vc.size(2);
    auto z = torch::empty({n, T, dh}, vc.options());
    per_item(n, 0, [&](int64_t i, float*) {
      const float* pi = pc.data_ptr<float>() + i * T * T;
      for (int64_t r0 = 0; r0 < T; r0 += kCausalBlock) {
        // the block's keys end at its last row unless an editor put weight on later keys
        int64_t keys = block_end(r0, T);
        for (int64_t r = r0; r < block_end(r0, T); ++r)
          for (int64_t j = T - 1; j >= keys; --j)
            if (pi[r * T + j] != 0.0f) {
              keys = j + 1;
              break;
            }
        block_pv(pi + r0 * T, vc.data_ptr<float>() + i * T * dh, T, dh, r0, keys, z.data_ptr<float>() + i * T * dh);
      }
    });
    ctx->save_for_backward({pc, vc});
    return z;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto g = grads[0].contiguous();
    return {bmm_split(g, saved[1].transpose(1, 2), 1.0, {}), bmm_split(saved[0].transpose(1, 2), g, 1.0, {})};
  }
};

class Rotary : public torch::autograd::Function<Rotary> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate(x, cos, sin, false);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], true), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor gelu_forward(const torch::Tensor& x) {
  auto xc = x.contiguous();
  auto y = torch::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  split_threads(y.numel(), [&](int64_t s, int64_t e) { gelu_tanh_forward(xp + s, yp + s, e - s); });
  return y;
}

class GeluTanh : public torch::autograd::Function<GeluTanh> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto xc = x.contiguous();
    ctx->save_for_backward({xc});
    return gelu_forward(xc);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto x = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    auto out = torch::empty_like(x);
    const float* xp = x.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* op = out.data_ptr<float>();
    split_threads(x.numel(), [&](int64_t s, int64_t e) { gelu_tanh_backward(xp + s, gp + s, op + s, e - s); });
    return {out};
  }
};

}  // namespace

torch::Tensor attention_matmul(const torch::Tensor& a, const torch::Tensor& b, double alpha, const torch::Tensor& add) {
  if (!fast_ok(a) || !fast_ok(b)) {
    auto out = torch::bmm(a, b);
    if (alpha != 1.0) out = out * alpha;
    return add.defined() ? out + add : out;
  }
  return ScaledBmm::apply(a, b, add.defined() ? add : torch::zeros({}), alpha, add.defined());
}

namespace {
torch::Tensor causal_mask_like(const torch::Tensor& s) {
  return torch::ones({s.size(-2), s.size(-1)}, s.options().dtype(torch::kBool)).triu(1);
}
}  // namespace

torch::Tensor causal_scores(const torch::Tensor& q, const torch::Tensor& k, double scale) {
  TORCH_CHECK(q.dim() == 3 && k.sizes() == q.sizes(), "causal_scores: q, k [n, T, dh]");
  if (!fast_ok(q) || !fast_ok(k)) {
    auto s = torch::matmul(q, k.transpose(1, 2)).mul(scale);
    return s.masked_fill(causal_mask_like(s), -std::numeric_limits<double>::infinity());
  }
  return CausalScores::apply(q, k, scale);
}

torch::Tensor causal_softmax(const torch::Tensor& scores) {
  TORCH_CHECK(scores.dim() == 3 && scores.size(1) == scores.size(2), "causal_softmax: scores [n, T, T]");
  if (!fast_ok(scores)) return torch::softmax(scores, -1);
  return CausalSoftmax::apply(scores);
}

torch::Tensor causal_pattern_v(const torch::Tensor& pattern, const torch::Tensor& v) {
  TORCH_CHECK(pattern.dim() == 3 && v.dim() == 3 && pattern.size(2) == v.size(1), "causal_pattern_v: [n, T, T], [n, T, dh]");
  if (!fast_ok(pattern) || !fast_ok(v)) return torch::matmul(pattern, v);
  return CausalPatternV::apply(pattern, v);
}

int64_t causal_attention_pairs(int64_t T) {
  int64_t pairs = 0;
  for (int64_t r0 = 0; r0 < T; r0 += kCausalBlock) pairs += (block_end(r0, T) - r0) * block_end(r0, T);
  return pairs;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 3 && k.sizes() == q.sizes() && v.sizes() == q.sizes(), "causal_attention: q, k, v [n, T, dh]");
  if (!fast_ok(q) || !fast_ok(k) || !fast_ok(v)) return causal_pattern_v(causal_softmax(causal_scores(q, k, scale)), v);
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad()))
    return CausalAttention::apply(q, k, v, scale);
  // no graph: the pattern lives one block at a time in the thread's scratch, which stays in cache (same
  // arithmetic, so the same bits as with the graph)
  auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const int64_t n = qc.size(0), T = qc.size(1), dh = qc.size(2);
  auto z = torch::empty({n, T, dh}, qc.options());
  per_item(n, block_scratch(T), [&](int64_t i, float* pb) {
    causal_forward_item(qc.data_ptr<float>() + i * T * dh, kc.data_ptr<float>() + i * T * dh,
                        vc.data_ptr<float>() + i * T * dh, static_cast<float>(scale), T, dh, pb, false,
                        z.data_ptr<float>() + i * T * dh);
  });
  return z;
}

torch::Tensor rotary_embed(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (!fast_ok(x) || !fast_ok(cos)) {  // reference form
    const int64_t p = x.size(1), rd = cos.size(1), half = rd / 2;
    auto c = cos.view({1, p, 1, rd}), s = sin.view({1, p, 1, rd});
    auto xr = rd == x.size(-1) ? x : x.narrow(-1, 0, rd);
    auto out = xr * c + torch::cat({-xr.narrow(-1, half, half), xr.narrow(-1, 0, half)}, -1) * s;
    return rd == x.size(-1) ? out : torch::cat({out, x.narrow(-1, rd, x.size(-1) - rd)}, -1);
  }
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return rotate(x, cos, sin, false);  // no autograd node
  return Rotary::apply(x, cos, sin);
}

torch::Tensor gelu_tanh(const torch::Tensor& x) {
  if (!fast_ok(x)) return torch::gelu(x, "tanh");
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return gelu_forward(x);  // no autograd node
  return GeluTanh::apply(x);
}

}  // namespace ccc::model
