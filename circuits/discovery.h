#pragma once
// Circuit discovery on the bits metric (ACDC, Conmy et al. 2023, at node level): which heads and MLPs does
// the model need on a text, and, optionally, which edges between them.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "model/formats/loader.h"

namespace ccc::circuits {

enum class DiscoverMethod {
  kAcdc,         ///< exact and sequential: one scoring per candidate
  kAttribution,  ///< one second-order attribution estimate for every candidate, removed at once
};
DiscoverMethod parse_discover_method(const std::string& s);  ///< "acdc" | "attribution"
std::string to_string(DiscoverMethod m);

struct DiscoverOptions {
  double threshold = 0.01;  ///< τ: remove a component whose removal costs < τ bits per byte
  DiscoverMethod method = DiscoverMethod::kAcdc;
  bool edges = false;       ///< also price every edge between the circuit's components (path patching)
  /// Count only these coded tokens (a position mask, token_mask): every cost is bits over them per byte
  /// they cover; the model still reads the whole text. nullptr = every token. Not with kAttribution.
  const TokenMask* mask = nullptr;
};

struct DiscoveryStep {
  Component component;
  double delta_bits_per_byte = 0;  ///< exact cost of the removal (acdc) or its estimate (attribution)
  bool estimated = false;          ///< attribution's estimate
  bool removed = false;
};

struct DiscoveredEdge {
  Component sender;
  std::optional<Component> receiver;  ///< nullopt = the logits
  double delta_bits_per_byte = 0;     ///< path patching of this edge alone
  bool kept = false;                  ///< costs >= τ
};

struct Discovery {
  std::vector<Component> candidates;  ///< every head and MLP, in reverse topological order
  std::vector<Component> circuit;     ///< what is kept, in layer order
  std::vector<Component> removed;     ///< in candidate order
  std::vector<DiscoveryStep> steps;
  std::vector<DiscoveredEdge> edges;  ///< with DiscoverOptions::edges
  int64_t n_bytes = 0;  ///< bytes the costs divide by: the input's, or those the mask covers
  double clean_total_bits = 0, circuit_total_bits = 0, ablated_all_total_bits = 0;
  /// Share of the full ablation's cost the circuit recovers: (all − circuit) / (all − clean); 1 when the
  /// full ablation costs nothing.
  double faithfulness() const;
};

struct DiscoverCallbacks {
  std::function<void(const DiscoveryStep&)> on_step;  ///< after each candidate is decided
  ProgressFn candidates;                              ///< acdc: candidates scored
  ProgressFn edges;                                   ///< edges priced
};

/// From the full model, removes heads and MLPs in reverse topological order (last layer first, MLP before
/// its layer's heads) whenever the removal, on top of the ones kept removed, costs < τ bits per byte of
/// `text` (acdc). Method attribution: every candidate whose second-order attribution estimate
/// (circuits/attribution.h, at the full model) is < τ bits per byte is removed at once — one forward +
/// backward instead of one scoring per candidate; the circuit's bits are still scored exactly. Edges
/// (rolling policy only): each ordered pair of kept components on a path, and each to the logits, priced
/// alone by path patching. Throws ccc::Error for attribution with resample ablation, or edges on a model
/// scored in strided windows (naming `m.source`).
Discovery discover(model::LoadedModel& m, std::string_view text, const ScoringRun& run, const Reference* ref,
                   const DiscoverOptions& opt, const DiscoverCallbacks& cb = {});

/// The candidates of discover for `cfg`: every head and (unless attention-only) MLP, as parse_components
/// lists them ("heads" then "mlps"): what a mean / resample reference must cover.
std::vector<Component> discovery_components(const model::ModelConfig& cfg);

}  // namespace ccc::circuits
