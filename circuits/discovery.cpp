#include "circuits/discovery.h"

#include <algorithm>

#include "circuits/attribution.h"
#include "circuits/patching.h"
#include "model/base/dist.h"
#include "model/base/error.h"

namespace ccc::circuits {

DiscoverMethod parse_discover_method(const std::string& s) {
  if (s == "acdc") return DiscoverMethod::kAcdc;
  if (s == "attribution") return DiscoverMethod::kAttribution;
  throw Error("discover: unknown method '" + s + "' (acdc or attribution)");
}

std::string to_string(DiscoverMethod m) { return m == DiscoverMethod::kAcdc ? "acdc" : "attribution"; }

double Discovery::faithfulness() const {
  return ablated_all_total_bits > clean_total_bits
             ? (ablated_all_total_bits - circuit_total_bits) / (ablated_all_total_bits - clean_total_bits)
             : 1.0;
}

std::vector<Component> discovery_components(const model::ModelConfig& cfg) {
  auto all = sweep_set("heads", cfg);
  if (!cfg.attn_only)
    for (const auto& c : sweep_set("mlps", cfg)) all.push_back(c);
  return all;
}

namespace {

bool contains(const std::vector<Component>& v, const Component& c) { return std::find(v.begin(), v.end(), c) != v.end(); }

// reverse topological order: last layer first; in a layer the MLP (after attention) before the heads
std::vector<Component> reverse_topological(const model::ModelConfig& cfg) {
  std::vector<Component> order;
  for (int64_t layer = cfg.n_layers - 1; layer >= 0; --layer) {
    if (!cfg.attn_only) order.push_back({Component::Kind::kMlp, layer, -1});
    for (int64_t h = cfg.n_heads - 1; h >= 0; --h) order.push_back({Component::Kind::kHead, layer, h});
  }
  return order;
}

// every (sender, receiver) pair of kept components on a path, and every sender to the logits
std::vector<std::pair<Component, std::optional<Component>>> circuit_paths(const std::vector<Component>& kept,
                                                                          const model::ModelConfig& cfg) {
  std::vector<std::pair<Component, std::optional<Component>>> paths;
  for (const auto& s : kept) {
    for (const auto& r : kept) {
      try {
        check_path(s, r, cfg);
      } catch (const Error&) {
        continue;  // not downstream
      }
      paths.emplace_back(s, r);
    }
    paths.emplace_back(s, std::nullopt);
  }
  return paths;
}

}  // namespace

Discovery discover(model::LoadedModel& m, std::string_view text, const ScoringRun& run, const Reference* ref,
                   const DiscoverOptions& opt, const DiscoverCallbacks& cb) {
  CCC_CHECK(opt.method != DiscoverMethod::kAttribution || run.mode == Mode::kZero || run.mode == Mode::kMean,
            "discover --method attribution: use --mode zero or mean (a ", to_string(run.mode),
            " ablation has no single replacement value to expand around)");
  const auto& cfg = m.config;
  const auto sopt = run.stream_options();
  CCC_CHECK(!opt.edges || model::resolve_window_policy(cfg, sopt).second, m.source,
            ": --edges uses path patching, which needs the rolling window policy (a rotary model)");
  CCC_CHECK(opt.mask == nullptr || opt.method == DiscoverMethod::kAcdc,
            "discover --method attribution does not take a position mask (its estimate sums every position); use acdc");
  Discovery d;
  d.candidates = reverse_topological(cfg);
  d.n_bytes = opt.mask != nullptr ? opt.mask->bytes : static_cast<int64_t>(text.size());
  CCC_CHECK(d.n_bytes > 0, "discover: the position mask covers no byte");
  const auto n = static_cast<double>(d.n_bytes);
  auto counted = [&](const std::vector<double>& bits) {
    return total_bits(opt.mask != nullptr ? masked(bits, *opt.mask) : bits);
  };
  auto bits_without = [&](const std::vector<Component>& removed) {
    return counted(ablated_bits(m, text, run, removed, ref));
  };
  auto step = [&](const DiscoveryStep& s) {
    d.steps.push_back(s);
    if (cb.on_step) cb.on_step(s);
  };
  d.clean_total_bits = bits_without({});
  d.ablated_all_total_bits = bits_without(d.candidates);
  double current = d.clean_total_bits;
  const auto n_cand = static_cast<int64_t>(d.candidates.size());
  if (opt.method == DiscoverMethod::kAttribution) {
    const int64_t W = model::resolve_window_policy(cfg, sopt).first;
    const auto est = attribute(m, model::stream_tokens(m, text, sopt), W, d.candidates, run.mode, ref).estimate(2);
    for (size_t i = 0; i < d.candidates.size(); ++i) {
      const bool remove = est[i] / n < opt.threshold;
      step({d.candidates[i], est[i] / n, /*estimated=*/true, remove});
      if (remove) d.removed.push_back(d.candidates[i]);
    }
    current = bits_without(d.removed);
  } else {
    // Sequential by definition (each trial removes the candidate from what is removed so far). Under
    // mpirun the next N candidates' trials are scored at once, one per rank, each against the removed set
    // as it stands; they are then taken in order, and the first removal makes the later trials stale (they
    // are scored again in the next round). The decisions and figures are those of the sequential loop.
    const int64_t N = dist::in_map() ? 1 : dist::size();
    for (size_t i = 0; i < d.candidates.size();) {
      if (cb.candidates) cb.candidates(static_cast<int64_t>(d.steps.size()), n_cand);
      const size_t batch = std::min(static_cast<size_t>(N), d.candidates.size() - i);
      const auto res = dist::map(static_cast<int64_t>(batch), [&](int64_t k) {
        auto trial = d.removed;
        trial.push_back(d.candidates[i + static_cast<size_t>(k)]);
        return dist::pack({bits_without(trial)});
      });
      size_t k = 0;
      for (; k < batch; ++k) {
        const auto& c = d.candidates[i + k];
        const double bits = dist::unpack_doubles(res[k]).at(0);
        const double cost = (bits - current) / n;
        const bool remove = cost < opt.threshold;
        step({c, cost, /*estimated=*/false, remove});
        if (remove) {
          d.removed.push_back(c);
          current = bits;
          ++k;
          break;
        }
      }
      i += k;
    }
    if (cb.candidates) cb.candidates(n_cand, n_cand);
  }
  d.circuit_total_bits = current;
  for (auto it = d.candidates.rbegin(); it != d.candidates.rend(); ++it)  // layer order
    if (!contains(d.removed, *it)) d.circuit.push_back(*it);
  std::vector<Component> removed_in_order;
  for (const auto& c : d.candidates)
    if (contains(d.removed, c)) removed_in_order.push_back(c);
  d.removed = removed_in_order;
  if (opt.edges) {
    const auto paths = circuit_paths(d.circuit, cfg);
    int64_t priced = 0;
    const auto costs = dist::map(static_cast<int64_t>(paths.size()), [&](int64_t k) {  // one path per unit
      const auto& [s, r] = paths[static_cast<size_t>(k)];
      const auto b = path_patch_bits(m, text, sopt, s, r, run.mode, ref, run.seed);
      return dist::pack({(counted(b.patched) - counted(b.clean)) / n});
    }, [&](int64_t) {
      if (cb.edges) cb.edges(++priced, static_cast<int64_t>(paths.size()));
    });
    for (size_t k = 0; k < paths.size(); ++k) {
      const double cost = dist::unpack_doubles(costs[k]).at(0);
      d.edges.push_back({paths[k].first, paths[k].second, cost, cost >= opt.threshold});
    }
  }
  return d;
}

}  // namespace ccc::circuits
