#include "circuits/attribution.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "model/base/error.h"
#include "model/core/bits.h"

namespace ccc::circuits {

namespace {

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * static_cast<double>(i + j);
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  CCC_CHECK(a.size() == b.size() && a.size() >= 2, "spearman: two series of equal length >= 2 needed");
  const auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

std::vector<double> Attribution::estimate(int order) const {
  CCC_CHECK(order == 1 || order == 2, "attribution: order ", order, " is not 1 or 2");
  auto e = linear;
  if (order == 2)
    for (size_t i = 0; i < e.size(); ++i) e[i] += curvature[i];
  return e;
}

Attribution attribute(model::LoadedModel& m, const std::vector<std::vector<int64_t>>& streams, int64_t window,
                      const std::vector<Component>& set, Mode mode, const Reference* ref, const TokenMask* mask) {
  CCC_CHECK(mode != Mode::kResample && mode != Mode::kCorrupt, "attribution patching: ", to_string(mode),
            " ablations have no single replacement value; use zero or mean");
  CCC_CHECK(mode == Mode::kZero || ref != nullptr, "attribution patching: mean needs a reference");
  CCC_CHECK(window >= 2 && window <= m.config.n_ctx, "attribution: window ", window, " outside [2, n_ctx]");
  std::vector<std::string> hooks;
  for (const auto& c : set)
    if (std::find(hooks.begin(), hooks.end(), c.hook()) == hooks.end()) hooks.push_back(c.hook());
  torch::AutoGradMode grad_on(true);  // also under a caller's NoGradGuard
  // frozen weights: only activation gradients are computed
  std::vector<std::pair<torch::Tensor, bool>> params;
  for (auto& p : m.model->parameters()) {
    params.emplace_back(p, p.requires_grad());
    p.set_requires_grad(false);
  }
  Attribution out{std::vector<double>(set.size(), 0.0), std::vector<double>(set.size(), 0.0)};
  const int64_t S = std::max<int64_t>(1, window / 2);
  if (mask != nullptr) {
    size_t coded = 0;
    for (const auto& toks : streams) coded += toks.empty() ? 0 : toks.size() - 1;
    CCC_CHECK(mask->on.size() == coded, "attribution: a mask of ", mask->on.size(), " tokens for ", coded, " coded tokens");
  }
  size_t stream_base = 0;  // index in mask->on of the stream's first coded token
  try {
    for (const auto& toks : streams) {
      const int64_t n = static_cast<int64_t>(toks.size());
      const size_t base = stream_base;
      stream_base += toks.empty() ? 0 : toks.size() - 1;
      for (int64_t start = 0; start + 1 < n; start += S) {
        const int64_t len = std::min(window, n - start);
        const int64_t first = start == 0 ? 0 : window - S - 1;  // first scored prediction index
        if (first >= len - 1) break;
        auto ids = torch::tensor(std::vector<int64_t>(toks.begin() + start, toks.begin() + start + len), torch::kInt64).unsqueeze(0);
        model::HookSet hs;
        for (const auto& h : hooks) hs.cache_grad(h);
        auto logits = m.model->forward(ids.narrow(1, 0, len - 1), {&hs});
        auto tgt = ids.narrow(1, 1, len - 1).clamp_max(logits.size(2) - 1);
        const auto scored_logits = logits.narrow(1, first, len - 1 - first).to(torch::kFloat64);
        const auto scored_targets = tgt.narrow(1, first, len - 1 - first);
        torch::Tensor total;
        if (mask == nullptr) {
          total = model::total_bits(scored_logits, scored_targets);
        } else {
          // prediction j of the window prices coded token start + j of the stream
          std::vector<double> w(static_cast<size_t>(len - 1 - first));
          for (size_t k = 0; k < w.size(); ++k) w[k] = mask->on[base + static_cast<size_t>(start + first) + k] ? 1.0 : 0.0;
          if (std::all_of(w.begin(), w.end(), [](double x) { return x == 0; })) continue;  // nothing counted here
          total = (model::token_bits(scored_logits, scored_targets) * torch::tensor(w, torch::kFloat64).unsqueeze(0)).sum();
        }
        total.backward();
        torch::NoGradGuard ng;
        std::map<std::string, torch::Tensor> g_delta;  // g · (r − a) of each hook, once per window
        for (const auto& h : hooks) {
          const auto a = hs.cached().at(h).detach().to(torch::kFloat64);
          const auto g = hs.grad(h).to(torch::kFloat64);
          const torch::Tensor r = mode == Mode::kZero ? torch::zeros_like(a) : ref->mean.at(h).to(torch::kFloat64).expand_as(a);
          g_delta[h] = g * (r - a);  // [1, p, ...]
        }
        for (size_t i = 0; i < set.size(); ++i) {
          const auto& c = set[i];
          auto prod = g_delta.at(c.hook());
          if (c.index >= 0) prod = prod.select(2, c.index);  // a head's [1, p, d_head] or a neuron's [1, p]
          if (prod.dim() > 2) prod = prod.flatten(2).sum(2);  // g_s·δ_s per position: [1, p]
          out.linear[i] += prod.sum().item<double>();
          out.curvature[i] += 0.5 * std::log(2.0) * prod.square().sum().item<double>();
        }
      }
    }
  } catch (...) {
    for (auto& [p, rg] : params) p.set_requires_grad(rg);
    throw;
  }
  for (auto& [p, rg] : params) p.set_requires_grad(rg);
  return out;
}

}  // namespace ccc::circuits
