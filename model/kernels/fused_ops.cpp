#include "model/kernels/fused_ops.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

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
