#include "model/fused_ops.h"

#include <ATen/Parallel.h>

#include "model/decode_attention.h"

namespace ccc::model {

namespace {

bool fast_ok(const torch::Tensor& t) { return t.is_cpu() && t.scalar_type() == torch::kFloat32; }

// One pass over [rows = b*p*heads, dh]; `inverse` applies the transpose (the backward).
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, bool inverse) {
  auto xc = x.contiguous();
  auto cc = cos.contiguous(), sc = sin.contiguous();
  const int64_t b = xc.size(0), p = xc.size(1), heads = xc.size(2), dh = xc.size(3), rd = cc.size(1), half = rd / 2;
  // written as [b, heads, p, dh] memory (returned as the [b, p, heads, dh] view): attention's
  // transpose(1, 2) of q and k is then free instead of a copy
  auto out = torch::empty({b, heads, p, dh}, xc.options()).transpose(1, 2);
  const float* xp = xc.data_ptr<float>();
  const float* cp = cc.data_ptr<float>();
  const float* sp = sc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, b * p, 16, [&](int64_t s, int64_t e) {
    for (int64_t bp = s; bp < e; ++bp) {
      const float* c = cp + (bp % p) * rd;
      const float* si = sp + (bp % p) * rd;
      for (int64_t h = 0; h < heads; ++h) {
        const float* in = xp + (bp * heads + h) * dh;
        float* o = op + (((bp / p) * heads + h) * p + bp % p) * dh;
        if (!inverse) {
          for (int64_t i = 0; i < half; ++i) {
            o[i] = in[i] * c[i] - in[i + half] * si[i];
            o[i + half] = in[i + half] * c[i + half] + in[i] * si[i + half];
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            o[i] = in[i] * c[i] + in[i + half] * si[i + half];
            o[i + half] = in[i + half] * c[i + half] - in[i] * si[i];
          }
        }
        for (int64_t i = rd; i < dh; ++i) o[i] = in[i];
      }
    }
  });
  return out;
}

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

class GeluTanh : public torch::autograd::Function<GeluTanh> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto xc = x.contiguous();
    ctx->save_for_backward({xc});
    auto y = xc.clone();
    float* p = y.data_ptr<float>();
    at::parallel_for(0, y.numel(), 1 << 14, [&](int64_t s, int64_t e) { gelu_tanh_inplace(p + s, e - s); });
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto x = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    auto out = torch::empty_like(x);
    const float* xp = x.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, x.numel(), 1 << 14,
                     [&](int64_t s, int64_t e) { gelu_tanh_backward(xp + s, gp + s, op + s, e - s); });
    return {out};
  }
};

}  // namespace

torch::Tensor rotary_embed(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (!fast_ok(x) || !fast_ok(cos)) {  // reference form
    const int64_t p = x.size(1), rd = cos.size(1), half = rd / 2;
    auto c = cos.view({1, p, 1, rd}), s = sin.view({1, p, 1, rd});
    auto xr = rd == x.size(-1) ? x : x.narrow(-1, 0, rd);
    auto out = xr * c + torch::cat({-xr.narrow(-1, half, half), xr.narrow(-1, 0, half)}, -1) * s;
    return rd == x.size(-1) ? out : torch::cat({out, x.narrow(-1, rd, x.size(-1) - rd)}, -1);
  }
  return Rotary::apply(x, cos, sin);
}

torch::Tensor gelu_tanh(const torch::Tensor& x) {
  if (!fast_ok(x)) return torch::gelu(x, "tanh");
  return GeluTanh::apply(x);
}

}  // namespace ccc::model
