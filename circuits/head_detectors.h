#pragma once
// Attention-head detectors with TransformerLens definitions, on repeated random sequences.
//
// A probe sequence is [BOS, r, r]: r = L random tokens, so position t (1-based after BOS) of the second
// copy (t in L+1 .. 2L) has its earlier occurrence at t − L. Per head, over the batch:
//   prev_token      = mean over queries t = 1 .. 2L of pattern[t, t − 1]
//   induction       = mean over queries t = L+1 .. 2L of pattern[t, t − L + 1]  (the token after the earlier occurrence)
//   duplicate_token = mean over queries t = L+1 .. 2L of pattern[t, t − L]      (the earlier occurrence itself)
// (TransformerLens detect_head with its detection patterns; every pattern row sums to 1, so the sum over
// the detection pattern divided by the number of query rows is this mean.)

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/formats/loader.h"

namespace ccc::circuits {

/// Per-head scores, index layer * n_heads + head.
struct HeadScores {
  int64_t n_layers = 0, n_heads = 0, seq_len = 0, batch = 0;
  std::vector<double> prev_token, induction, duplicate_token;
  double first_half_bits = 0;   ///< mean bits per token of the first copy of r (after BOS)
  double second_half_bits = 0;  ///< mean bits per token of the second copy
  double score(const std::vector<double>& v, int64_t layer, int64_t head) const { return v[layer * n_heads + head]; }
  /// The largest value of a score over all heads.
  static double max_of(const std::vector<double>& v);
  nlohmann::json to_json() const;
};

/// Scores of one layer's pattern [batch, n_heads, 2L+1, 2L+1] (query, key) of probe sequences with period L:
/// returns {prev_token, induction, duplicate_token}, each [n_heads] averaged over the batch.
std::vector<std::vector<double>> pattern_scores(const torch::Tensor& pattern, int64_t L);

/// `batch` probe sequences [BOS, r, r] with |r| = L, seeded: printable bytes 32..126 for byte tokenizers,
/// otherwise ids below the model's output vocabulary that are not BOS/EOS and decode to at least one byte.
torch::Tensor probe_sequences(const model::LoadedModel& m, int64_t L, int64_t batch, uint64_t seed);

/// Runs the probe through the model (full path, hook_pattern of every layer cached) and scores every head.
HeadScores head_scores(model::LoadedModel& m, int64_t L = 50, int64_t batch = 8, uint64_t seed = 0);

}  // namespace ccc::circuits
