#pragma once
// Information in bits: the one differentiable measure shared by training, scoring and attribution.
// A token of probability p costs −log2 p bits (its arithmetic-coding cost).

#include <torch/torch.h>

namespace ccc::model {

/// Per-token bits −log2 softmax(logits)[target] (differentiable). logits [..., V], targets [...] int64 with
/// the same leading shape -> [...] in the dtype of `logits` (pass double logits for scoring: the log-softmax
/// is taken in that dtype).
torch::Tensor token_bits(const torch::Tensor& logits, const torch::Tensor& targets);

/// Σ token_bits: a 0-dim tensor in bits, differentiable (backward() of it gives d total_bits / d x).
torch::Tensor total_bits(const torch::Tensor& logits, const torch::Tensor& targets);

/// 1 / ln 2: nats -> bits.
constexpr double kBitsPerNat = 1.4426950408889634;

}  // namespace ccc::model
