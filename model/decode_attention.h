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

/// q [B, H, dh], k / v [B, KH, cap, dh] (slots [0, n) are used, in slot order), z [B, H, dh] output.
/// Head h reads kv head h / (H / KH). scores = scale * q·k, softmax over the n slots, z = Σ p v.
void decode_attention(const float* q, const float* k, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale);

/// The same with keys and values stored as IEEE fp16 (bit patterns), converted exactly to fp32.
void decode_attention(const float* q, const uint16_t* k, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale);

/// y = GELU(x), tanh approximation (y may be x; |error| < 2e-6 vs the exact formula).
void gelu_tanh_forward(const float* x, float* y, int64_t n);

/// out = g * d gelu_tanh / dx at x (same approximation as gelu_tanh_forward).
void gelu_tanh_backward(const float* x, const float* g, float* out, int64_t n);

/// The path decode_attention takes for heads of size dh: "avx2" or "scalar".
std::string decode_attention_path(int64_t dh);

}  // namespace ccc::model
