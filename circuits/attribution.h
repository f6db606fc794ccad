#pragma once
// Attribution patching (Nanda 2023; Syed et al. 2023): the Δbits of ablating each component, estimated from
// one forward and one backward of the total bits. With g_s = ∂bits/∂a_c at position s and δ_s = r_c − a_c
// (r_c the replacement: 0 for zero ablation, the reference mean for mean ablation):
//   first order   Δ_c ≈ Σ_s g_s·δ_s                                  (attribution patching as published)
//   second order  Δ_c ≈ Σ_s g_s·δ_s + (ln 2 / 2) Σ_s (g_s·δ_s)²       (the default)
// The second term is the curvature of the bits in the Gauss–Newton form with the empirical Fisher, kept
// diagonal in positions: for one target, bits = −log2 p, and E[(∂ nats)²] = Fisher ≈ Hessian near a
// minimum; ln 2 converts (bits)² to bits. Why it is needed: a trained model sits near a stationary point
// of its loss, and the first-order term of ablating a head is (up to sign) ⟨W_O, ∂L/∂W_O⟩ (zero) or that
// plus μ·W_O ∂L/∂b_O (mean) — both ≈ 0 — so whole-component ablations are second-order effects. Same cost
// as the first order: the per-position products are already there.
//
// Policy: the gradient needs a differentiable forward, and the rolling KV cache is not one, so each stream
// is scored in full-path windows of W tokens every W/2 (the first window scores all its targets, the
// others their last W/2): every coded target is scored once, with W/2..W−1 tokens of context instead of
// the rolling cache's W−1. Compare with exact sweeps (ccc attribute --check) for the error this adds.

#include <cstdint>
#include <vector>

#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "model/formats/loader.h"

namespace ccc::circuits {

/// The two terms per component of `set`, in bits.
struct Attribution {
  std::vector<double> linear;     ///< Σ_s g_s·δ_s
  std::vector<double> curvature;  ///< (ln 2 / 2) Σ_s (g_s·δ_s)², ≥ 0
  /// order 1: linear; order 2: linear + curvature.
  std::vector<double> estimate(int order) const;
};

/// Estimated Δbits of every component of `set` over the streams (BOS + tokens each) with window `window`.
/// Modes zero and mean (resample has no single replacement value to expand around). With `mask` (one flag
/// per coded token, streams in order: circuits::token_mask) the bits differentiated are those of the
/// masked targets only; every position still feeds them.
Attribution attribute(model::LoadedModel& m, const std::vector<std::vector<int64_t>>& streams, int64_t window,
                      const std::vector<Component>& set, Mode mode, const Reference* ref,
                      const TokenMask* mask = nullptr);

/// Spearman rank correlation (ties averaged).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace ccc::circuits
