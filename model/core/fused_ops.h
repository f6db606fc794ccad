#pragma once
// Fused autograd ops of the full-sequence path (training, scoring) that LibTorch 1.13 runs as several
// elementwise passes on CPU. Each is one pass forward and one backward, elementwise, so results do not
// depend on the thread count.
//
// gelu_tanh: the tanh-form GELU (vectorised tanh through exp; |error| < 2e-6 vs torch::gelu).
// rotary_embed: rotate-half rotary embedding of the first rotary_dim dims of each head.

#include <torch/torch.h>

namespace ccc::model {

/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (float32, CPU; else torch::gelu(x, "tanh")).
torch::Tensor gelu_tanh(const torch::Tensor& x);

/// alpha · a [n, i, k] @ b [n, k, j] (+ add [1, i, j] or [i, j], broadcast over n) -> [n, i, j]: attention's
/// batch of small GEMMs split across threads, each slice on single-threaded BLAS (LibTorch's bmm lets
/// OpenBLAS split every 256x64x256 GEMM across threads instead: `ccc bench train` 51% -> 57% here). Forward and
/// backward; each element is computed by one single-threaded GEMM whatever the thread count. OpenBLAS's
/// thread count is process-wide: it is 1 for the duration of the call (and restored after), so a GEMM
/// another thread runs meanwhile is single-threaded too.
torch::Tensor attention_matmul(const torch::Tensor& a, const torch::Tensor& b, double alpha = 1.0,
                               const torch::Tensor& add = {});

/// softmax(scale · q kᵀ, causal) v for q, k, v [n, T, dh] -> [n, T, dh]: full-sequence self-attention
/// with nothing hooked between, forward and backward. Query rows go in blocks of 128 whose GEMMs stop at
/// the block's last key, so the upper triangle of the T x T square is not computed (T = 1024: 56% of the
/// square's FLOPs); each of the n items is computed by one thread with single-threaded BLAS, so results
/// do not depend on the thread count. Keeps the [n, T, T] pattern for the backward, as the unfused path
/// does. float32 CPU; otherwise the three pieces below in torch ops.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale);

/// (query, key) pairs causal_attention's GEMMs compute for one item of T positions (T² for the square;
/// 0.5625 T² at T = 1024): Σ over query blocks of rows × keys up to the block's last row.
int64_t causal_attention_pairs(int64_t T);

/// The same attention in three pieces for hooks on the scores and the pattern; with nothing edited,
/// causal_pattern_v(causal_softmax(causal_scores(q, k, s)), v) equals causal_attention(q, k, v, s) bit for
/// bit (same primitives, same GEMM shapes). causal_scores: [n, T, T], −inf above the diagonal.
/// causal_softmax: each row over its columns up to its last score above −inf. causal_pattern_v: pattern ·
/// v, a row block's keys ending at its last row unless the pattern has weight on later keys.
torch::Tensor causal_scores(const torch::Tensor& q, const torch::Tensor& k, double scale);
torch::Tensor causal_softmax(const torch::Tensor& scores);
torch::Tensor causal_pattern_v(const torch::Tensor& pattern, const torch::Tensor& v);

/// x [b, p, heads, d_head]; cos, sin [p, rd] (rd even, <= d_head, rotate-half layout: cat(f, f)).
/// out[..., i] = x_i cos_i - x_{i+rd/2} sin_i, out[..., i+rd/2] = x_{i+rd/2} cos_{i+rd/2} + x_i sin_{i+rd/2}
/// for i < rd/2; dims past rd pass through. The result is stored head-major ([b, heads, p, d_head] memory).
torch::Tensor rotary_embed(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace ccc::model
