#pragma once
// Attribution patching (Nanda 2023; Syed et al. 2023): the Δbits of ablating each component, estimated to
// first order from one forward and one backward of the total bits — Δ_c ≈ Σ_positions ∂bits/∂a_c · (r_c − a_c)
// with r_c the replacement (0 for zero ablation, the reference mean for mean ablation).
//
// Policy: the gradient needs a differentiable forward, and the rolling KV cache is not one, so each stream
// is scored in full-path windows of W tokens every W/2 (the first window scores all its targets, the
// others their last W/2): every coded target is scored once, with W/2..W−1 tokens of context instead of
// the rolling cache's W−1. Compare with exact sweeps (ccc attribute --check) for the error this adds.

#include <cstdint>
#include <vector>

#include "circuits/ablation.h"
#include "model/formats/loader.h"

namespace ccc::circuits {

/// Estimated Δbits per component of `set` over the streams (BOS + tokens each) with window `window`.
/// Modes zero and mean (resample has no single replacement value to linearise around).
std::vector<double> attribute(model::LoadedModel& m, const std::vector<std::vector<int64_t>>& streams, int64_t window,
                              const std::vector<Component>& set, Mode mode, const Reference* ref);

/// Spearman rank correlation (ties averaged).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace ccc::circuits
