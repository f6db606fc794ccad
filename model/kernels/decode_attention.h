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
/// `task_begin` / `task_end` (−1 = B·H) restrict the work to (row, head) pairs b·H + h in that range
/// (callers split rows and heads across threads; each pair's arithmetic is the same).
void decode_attention(const float* q, const float* k, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq = 0, int64_t task_begin = 0,
                      int64_t task_end = -1);

/// The same with keys and values stored as IEEE fp16 (bit patterns), converted exactly to fp32.
void decode_attention(const float* q, const uint16_t* k, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq = 0, int64_t task_begin = 0,
                      int64_t task_end = -1);

/// The softmax the kernel above applies, materialised for hooks: scores [B, H, n] = scale · q·k over slots
/// [0, n) and pattern [B, H, n] = exp(scores − max) / Σ, with the same operations as decode_attention.
void decode_attention_probs(const float* q, const float* k, int64_t B, int64_t H, int64_t KH, int64_t cap, int64_t n,
                            int64_t dh, float scale, int64_t ldq, float* scores, float* pattern);
void decode_attention_probs(const float* q, const uint16_t* k, int64_t B, int64_t H, int64_t KH, int64_t cap,
                            int64_t n, int64_t dh, float scale, int64_t ldq, float* scores, float* pattern);

/// z [B, H, dh] = Σ_t pattern[b, h, t] · v[slot t] (a pattern an editor replaced).
void decode_attention_apply(const float* pattern, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                            int64_t cap, int64_t n, int64_t dh);
void decode_attention_apply(const float* pattern, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                            int64_t cap, int64_t n, int64_t dh);

/// The path decode_attention takes for heads of size dh: "avx2" or "scalar".
std::string decode_attention_path(int64_t dh);

}  // namespace ccc::model
