#pragma once
// Row-wise and elementwise float kernels of the decode step and the fused training ops: rotary embedding,
// activations, normalisation, fp16 conversion. Each has a fixed operation order (AVX2 or scalar, chosen
// once per process), so a row's result depends on neither its batch nor threads. No torch here.

#include <cstdint>

namespace ccc::model {

/// Rotate-half rotary embedding of one head's first rd dims (in may be out; dims past rd are not touched):
/// out_i = x_i cos_i − x_{i+rd/2} sin_i, out_{i+rd/2} = x_{i+rd/2} cos_{i+rd/2} + x_i sin_{i+rd/2} for
/// i < rd/2; `inverse` applies the transpose (the backward).
void rotate_half(const float* in, float* out, const float* cos, const float* sin, int64_t rd, bool inverse);

/// rotate_half in place on `heads` heads of `rows` rows (row r starts at x + r·ld; cos / sin are one
/// position's [rd] values).
void rotate_heads_inplace(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t dh, int64_t rd, const float* cos,
                          const float* sin);

/// y = GELU(x), tanh approximation (y may be x; |error| < 2e-6 vs the exact formula).
void gelu_tanh_forward(const float* x, float* y, int64_t n);
/// out = g * d gelu_tanh / dx at x (same approximation as gelu_tanh_forward).
void gelu_tanh_backward(const float* x, const float* g, float* out, int64_t n);
/// y = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU, std::erf).
void gelu_erf_forward(const float* x, float* y, int64_t n);
/// y = x / (1 + exp(−x)).
void silu_forward(const float* x, float* y, int64_t n);
/// y = max(x, 0).
void relu_forward(const float* x, float* y, int64_t n);

/// LayerNorm statistics and output of `rows` rows of d floats: mean[r], scale[r] = sqrt(var + eps) (biased
/// variance, accumulated in double), y = (x − mean) / scale · w + b (b may be null).
void layer_norm_rows(const float* x, int64_t rows, int64_t d, const float* w, const float* b, float eps, float* y,
                     float* mean, float* scale);
/// RMSNorm: scale[r] = sqrt(mean(x²) + eps) (accumulated in double), y = x / scale · w.
void rms_norm_rows(const float* x, int64_t rows, int64_t d, const float* w, float eps, float* y, float* scale);
/// The output of either norm from given statistics (an edited scale): y = (x − mean) / scale · w + b;
/// mean null for RMSNorm, b may be null.
void norm_rows_from_scale(const float* x, int64_t rows, int64_t d, const float* w, const float* b, const float* mean,
                          const float* scale, float* y);

/// e[i] = exp(x[i] − max x) for i < n (the decode attention's exp: relative error < 2e-7, fixed operations
/// per path); returns max x. The compressor's CDFs are built from these.
float softmax_numerators(const float* x, int64_t n, float* e);

/// IEEE fp32 -> fp16 bit patterns, round to nearest even (F16C when present; same results either way).
void float_to_half(const float* x, uint16_t* h, int64_t n);

}  // namespace ccc::model
