#pragma once
// Attention of one new token per row against a KV cache (the incremental path's inner loop).
//
// Each (row, head) is computed on its own with a fixed summation order, so a row's result depends on
// neither the batch it sits in nor the thread count. AVX2+FMA+F16C when the CPU has them and d_head % 8 == 0 (chosen once per
// process; decode_attention_path() names the choice, the compressor records it), else portable scalar code.
// No torch here: raw float arrays.

#include <cstdint>
#include <string>

namespace ccc::model {

/// q [B, H, dh] (rows `ldq` floats apart; 0 = H·dh), k / v [B, KH, cap, dh] (slots [0, n) are used, in
/// slot order), z [B, H, dh] output. Head h reads kv head h / (H / KH). scores = scale · q·k, softmax over
/// the n slots, z = Σ p v.
void decode_attention(const float* q, const float* k, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq = 0);

/// The same with keys and values stored as IEEE fp16 (bit patterns), converted exactly to fp32.
void decode_attention(const float* q, const uint16_t* k, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq = 0);

/// Rotate-half rotary embedding of one head's first rd dims (in may be out; dims past rd are not touched):
/// out_i = x_i cos_i − x_{i+rd/2} sin_i, out_{i+rd/2} = x_{i+rd/2} cos_{i+rd/2} + x_i sin_{i+rd/2} for
/// i < rd/2; `inverse` applies the transpose (the backward).
void rotate_half(const float* in, float* out, const float* cos, const float* sin, int64_t rd, bool inverse);

/// Rotate-half rotary embedding in place on `heads` heads of `rows` rows (row r starts at x + r·ld):
/// x_i, x_{i+rd/2} -> x_i cos_i − x_{i+rd/2} sin_i, x_{i+rd/2} cos_{i+rd/2} + x_i sin_{i+rd/2} for i < rd/2
/// (the formula of rotary_embed; cos / sin are one position's [rd] values).
void rotate_heads_inplace(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t dh, int64_t rd, const float* cos,
                          const float* sin);

/// y = GELU(x), tanh approximation (y may be x; |error| < 2e-6 vs the exact formula).
void gelu_tanh_forward(const float* x, float* y, int64_t n);

/// out = g * d gelu_tanh / dx at x (same approximation as gelu_tanh_forward).
void gelu_tanh_backward(const float* x, const float* g, float* out, int64_t n);

/// The path decode_attention takes for heads of size dh: "avx2" or "scalar".
std::string decode_attention_path(int64_t dh);

}  // namespace ccc::model
