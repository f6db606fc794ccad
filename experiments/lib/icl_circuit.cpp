#include "experiments/lib/icl_circuit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include <torch/torch.h>

#include "circuits/discovery.h"
#include "circuits/head_detectors.h"
#include "experiments/lib/batched.h"
#include "model/base/error.h"

namespace ccc::experiments {

namespace {

using circuits::Component;

constexpr int64_t kCrossBlock = 8;  // positions per block of the crossover

// The first token position from which the induction heads carry at least as many bits as the rest: the
// first block of kCrossBlock positions whose mean gap Δ_ind − Δ_rest is >= 0 and stays >= 0 on average over
// every later block. `gap` [rows, P] is per position (bits index i = token position i + 1); −1 = never.
double crossover(const torch::Tensor& gap) {
  const int64_t P = gap.size(1), nb = P / kCrossBlock;
  if (nb == 0) return -1;
  auto blocks = gap.narrow(1, 0, nb * kCrossBlock).mean(0).view({nb, kCrossBlock}).mean(1);  // [nb]
  auto suffix = blocks.flip(0).cumsum(0).flip(0) / torch::arange(nb, 0, -1, torch::kFloat64);
  for (int64_t b = 0; b < nb; ++b)
    if (blocks[b].item<double>() >= 0 && suffix[b].item<double>() >= 0) return static_cast<double>(b * kCrossBlock + 1);
  return -1;
}

}  // namespace

Result run_icl_circuit(model::LoadedModel& m, std::string_view text, const IclCircuitOptions& o, IclCircuitDetail* detail) {
  const auto& cfg = m.config;
  require_byte_model(m, "icl");
  CCC_CHECK(o.windows >= 2 && o.null_draws >= 1 && o.max_heads >= 1 && o.early >= o.band && o.band >= 1,
            "icl: windows >= 2, null draws >= 1, max heads >= 1 and early >= band >= 1 are needed");
  CCC_CHECK(o.mode == circuits::Mode::kZero || o.mode == circuits::Mode::kMean || o.mode == circuits::Mode::kResample,
            "icl: --mode zero, mean or resample");
  const int64_t T = std::min(o.window_len, cfg.n_ctx - 1);
  const int64_t late = std::min(o.late, T - o.band), early = o.early;
  CCC_CHECK(late - o.band > early + o.band, "icl: the window of ", T, " tokens is too short for early ", early, " and late ",
            o.late, " positions (band ", o.band, ")");
  const int64_t S = std::min(o.span, T / 2);
  auto progress = [&o](const std::string& phase, int64_t done, int64_t total) {
    if (o.progress) o.progress(phase, done, total);
  };
  Result r;
  r.experiment = "icl";
  r.hypothesis = "As the context grows, the induction heads come to carry the in-context gain: ablating them raises "
                 "the ICL score (late minus early bits) and the bits of a repeated span's second copy beyond random "
                 "head sets of the same size.";
  r.claim = "In-context learning is the work of one circuit (induction heads) that wins over the rest of the model as "
            "the context grows.";
  r.headline = "icl_score_rise_induction";
  r.seed = o.seed;

  // windows: spread over the labels' contiguous ranges in turn
  std::vector<std::pair<std::string, std::pair<size_t, size_t>>> ranges;  // label, [begin, end)
  {
    std::vector<std::string> lab(text.size());
    for (const auto& [name, on] : o.byte_labels)
      for (size_t i = 0; i < std::min(on.size(), text.size()); ++i)
        if (on[i] && lab[i].empty()) lab[i] = name;
    for (size_t i = 0; i < text.size();) {
      size_t j = i;
      while (j < text.size() && lab[j] == lab[i]) ++j;
      if (static_cast<int64_t>(j - i) >= T) ranges.push_back({lab[i], {i, j}});
      i = j;
    }
  }
  CCC_CHECK(!ranges.empty(), "icl: the input holds no stretch of ", T, " bytes", o.byte_labels.empty() ? "" : " inside one label");
  std::vector<int64_t> per(ranges.size(), 0);
  for (int64_t w = 0; w < o.windows; ++w) per[static_cast<size_t>(w) % ranges.size()]++;
  const int64_t N = o.windows;
  auto win = torch::empty({N, T + 1}, torch::kInt64), rep = torch::empty({N, 2 * S + 1}, torch::kInt64);
  std::vector<std::string> window_label;
  int64_t row = 0;
  for (size_t k = 0; k < ranges.size(); ++k) {
    const auto [b, e] = ranges[k].second;
    for (int64_t i = 0; i < per[k]; ++i, ++row) {
      const size_t off = b + (per[k] > 1 ? static_cast<size_t>(i) * (e - b - static_cast<size_t>(T)) / static_cast<size_t>(per[k] - 1) : 0);
      auto wa = win.accessor<int64_t, 2>(), ra = rep.accessor<int64_t, 2>();
      auto w = wa[row];
      auto rr = ra[row];
      w[0] = rr[0] = cfg.bos_id;
      for (int64_t t = 0; t < T; ++t) w[t + 1] = static_cast<uint8_t>(text[off + static_cast<size_t>(t)]);
      for (int64_t t = 0; t < S; ++t) rr[t + 1] = rr[S + t + 1] = w[t + 1];
      window_label.push_back(ranges[k].first);
    }
  }

  // the sets: induction heads by the independent detector; the top MLPs after the first by ablation cost
  const auto scores = circuits::head_scores(m);
  std::vector<size_t> order(scores.induction.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores.induction[a] > scores.induction[b]; });
  const double best = scores.induction[order[0]];
  std::vector<Component> induction;
  std::vector<double> induction_scores;
  for (size_t i : order)
    if (static_cast<int64_t>(induction.size()) < o.max_heads && scores.induction[i] >= std::max(0.2, 0.5 * best)) {
      induction.push_back({Component::Kind::kHead, static_cast<int64_t>(i) / scores.n_heads, static_cast<int64_t>(i) % scores.n_heads});
      induction_scores.push_back(scores.induction[i]);
    }
  CCC_CHECK(!induction.empty(), "icl: no head of ", m.source, " scores >= 0.2 on the induction detector (best ", best, ")");
  const auto cands = circuits::discovery_components(cfg);
  std::unique_ptr<circuits::Reference> ref;
  if (o.mode != circuits::Mode::kZero)
    ref = std::make_unique<circuits::Reference>(circuits::collect_reference(m, text, cands, o.mode, 0, 0, o.seed));
  std::vector<std::vector<Component>> mlp_sets;
  for (int64_t l = 1; l < cfg.n_layers && !cfg.attn_only; ++l) mlp_sets.push_back({{Component::Kind::kMlp, l, -1}});
  std::vector<Component> mlps;
  if (!mlp_sets.empty()) {
    auto sets = mlp_sets;
    sets.insert(sets.begin(), std::vector<Component>{});
    const auto bits = next_token_bits(m, win, static_cast<int64_t>(sets.size()), ablation_edits(cfg, sets, o.mode, ref.get(), o.seed),
                                      o.max_rows, [&](int64_t d) { progress("mlps", d, static_cast<int64_t>(sets.size())); });
    std::vector<std::pair<double, size_t>> cost;
    for (size_t i = 1; i < sets.size(); ++i) cost.push_back({(bits[i] - bits[0]).mean().item<double>(), i - 1});
    std::stable_sort(cost.begin(), cost.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < std::min(cost.size(), induction.size()); ++i) mlps.push_back(mlp_sets[cost[i].second][0]);
  }
  // null: random head sets of the induction set's size
  const auto heads = circuits::sweep_set("heads", cfg);
  std::mt19937_64 rng(o.seed ^ 0x1C1ULL);
  std::vector<std::vector<Component>> sets = {{}, induction, mlps};
  for (int64_t d = 0; d < o.null_draws; ++d) {
    auto idx = heads;
    std::shuffle(idx.begin(), idx.end(), rng);
    sets.emplace_back(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(std::min(induction.size(), idx.size())));
  }
  const int64_t B = static_cast<int64_t>(sets.size());
  const auto wbits = next_token_bits(m, win, B, ablation_edits(cfg, sets, o.mode, ref.get(), o.seed), o.max_rows,
                                     [&](int64_t d) { progress("windows", d, B); });
  const auto rbits = next_token_bits(m, rep, B, ablation_edits(cfg, sets, o.mode, ref.get(), o.seed), o.max_rows,
                                     [&](int64_t d) { progress("spans", d, B); });

  // per-window statistics: ICL score (bits at token positions p predicted by bits[p − 1]) and copies
  auto icl_score = [&](const torch::Tensor& bits) {  // [N, T] -> [N]
    return bits.narrow(1, late - o.band - 1, 2 * o.band).mean(1) - bits.narrow(1, early - o.band - 1, 2 * o.band).mean(1);
  };
  auto first_copy = [&](const torch::Tensor& bits) { return bits.narrow(1, 0, S).mean(1); };
  auto second_copy = [&](const torch::Tensor& bits) { return bits.narrow(1, S, S).mean(1); };
  auto vec = [](const torch::Tensor& t) {
    auto c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  const bool has_mlps = !mlps.empty();
  r.measurements.push_back(bootstrap_mean("icl_score_clean", vec(icl_score(wbits[0])), "bits", o.resamples, o.seed));
  r.measurements.push_back(bootstrap_mean("icl_score_induction_ablated", vec(icl_score(wbits[1])), "bits", o.resamples, o.seed + 1));
  if (has_mlps)
    r.measurements.push_back(bootstrap_mean("icl_score_mlps_ablated", vec(icl_score(wbits[2])), "bits", o.resamples, o.seed + 2));
  r.measurements.push_back(bootstrap_mean("icl_score_rise_induction", vec(icl_score(wbits[1]) - icl_score(wbits[0])), "bits",
                                          o.resamples, o.seed + 3));
  r.measurements.push_back(bootstrap_mean("second_copy_bits_per_byte_clean", vec(second_copy(rbits[0])), "bits_per_byte", o.resamples, o.seed + 4));
  r.measurements.push_back(bootstrap_mean("second_copy_bits_per_byte_induction_ablated", vec(second_copy(rbits[1])), "bits_per_byte",
                                          o.resamples, o.seed + 5));
  r.measurements.push_back(bootstrap_mean("second_copy_rise_induction", vec(second_copy(rbits[1]) - second_copy(rbits[0])),
                                          "bits_per_byte", o.resamples, o.seed + 6));
  std::vector<double> null_icl, null_copy;
  for (int64_t d = 0; d < o.null_draws; ++d) {
    null_icl.push_back((icl_score(wbits[static_cast<size_t>(3 + d)]) - icl_score(wbits[0])).mean().item<double>());
    null_copy.push_back((second_copy(rbits[static_cast<size_t>(3 + d)]) - second_copy(rbits[0])).mean().item<double>());
  }
  const std::string what = "random head sets of the induction set's size";
  r.null.push_back(over_draws("icl_score_rise_induction", null_icl, "bits", what));
  r.null.push_back(over_draws("second_copy_rise_induction", null_copy, "bits_per_byte", what));

  // bits vs position in log-spaced bins (the plot); the crossovers of the induction heads' cost over the rest's
  std::vector<int64_t> all(static_cast<size_t>(N));
  std::iota(all.begin(), all.end(), 0);
  std::vector<int64_t> starts;
  for (int64_t p = 1; p <= T; p *= 2) starts.push_back(p);
  auto binned = [&](const torch::Tensor& bits, const std::vector<int64_t>& rows) {  // [N, T] -> mean per bin
    std::vector<double> out;
    auto sel = bits.index_select(0, torch::tensor(rows, torch::kInt64));
    for (size_t i = 0; i < starts.size(); ++i) {
      const int64_t a = starts[i], b = i + 1 < starts.size() ? starts[i + 1] : T + 1;
      out.push_back(sel.narrow(1, a - 1, b - a).mean().item<double>());
    }
    return out;
  };
  torch::Tensor null_mean = torch::zeros_like(wbits[0]), rnull = torch::zeros_like(rbits[0]);
  for (int64_t d = 0; d < o.null_draws; ++d) {
    null_mean += wbits[static_cast<size_t>(3 + d)] / static_cast<double>(o.null_draws);
    rnull += rbits[static_cast<size_t>(3 + d)] / static_cast<double>(o.null_draws);
  }
  // the gap Δ_ind − Δ_rest = bits(ind ablated) − bits(rest ablated), per window and position
  const torch::Tensor wgap = wbits[1] - (has_mlps ? wbits[2] : null_mean), rgap = rbits[1] - (has_mlps ? rbits[2] : rnull);
  std::mt19937_64 boot(o.seed ^ 0xB0ULL);
  auto crossover_measurement = [&](const std::string& name, const torch::Tensor& gap) {
    Measurement c;
    c.name = name;
    c.unit = "token position (-1 = never)";
    c.value = crossover(gap);
    std::vector<double> stat;
    const int64_t R = std::min<int64_t>(o.resamples, 500);
    for (int64_t b = 0; b < R; ++b) {
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < N; ++i) rows.push_back(static_cast<int64_t>(boot() % static_cast<uint64_t>(N)));
      const double x = crossover(gap.index_select(0, torch::tensor(rows, torch::kInt64)));
      stat.push_back(x < 0 ? 1e18 : x);
    }
    set_percentile_ci(c, stat);
    for (double* b : {&c.ci_low, &c.ci_high})
      if (*b >= 1e18) *b = -1;  // never
    c.ci_method = "percentile bootstrap over " + std::to_string(N) + " rows, " + std::to_string(R) + " resamples, blocks of " +
                  std::to_string(kCrossBlock) + " positions (never = beyond every position, shown as -1); the rest = " +
                  (has_mlps ? "the top MLPs ablated" : "random head sets (an attention-only model)");
    return c;
  };
  r.measurements.push_back(crossover_measurement("crossover_position", wgap));
  r.measurements.push_back(crossover_measurement("crossover_position_repeated", rgap));

  // the verdict: both rises beyond their nulls
  auto find = [](const std::vector<Measurement>& v, const std::string& name) -> const Measurement& {
    for (const auto& x : v)
      if (x.name == name) return x;
    CCC_FAIL("icl: no statistic ", name);
  };
  const Verdict a = decide(find(r.measurements, "icl_score_rise_induction"), find(r.null, "icl_score_rise_induction"), +1, 0.05);
  const Verdict b = decide(find(r.measurements, "second_copy_rise_induction"), find(r.null, "second_copy_rise_induction"), +1, 0.05);
  r.verdict = a == Verdict::kSupported && b == Verdict::kSupported ? Verdict::kSupported
              : (a == Verdict::kNotSupported || b == Verdict::kNotSupported) ? Verdict::kNotSupported
                                                                             : Verdict::kInconclusive;
  r.verdict_rule = "both must hold: " + rule_text(+1, 0.05, "icl_score_rise_induction", "its random-head-set null") +
                   " (here " + to_string(a) + "); and the same rule on second_copy_rise_induction (here " + to_string(b) +
                   "). supported when both are; not_supported when either is; inconclusive otherwise";

  if (detail != nullptr) {
    *detail = IclCircuitDetail{};
    for (const auto& c : induction) detail->induction_heads.push_back(c.name());
    for (const auto& c : mlps) detail->mlps.push_back(c.name());
    detail->induction_scores = induction_scores;
    detail->bin_start = starts;
    detail->bits_clean = binned(wbits[0], all);
    detail->bits_induction = binned(wbits[1], all);
    detail->bits_mlps = has_mlps ? binned(wbits[2], all) : std::vector<double>{};
    detail->bits_null = binned(null_mean, all);
    const torch::Tensor cond[4] = {rbits[0], rbits[1], has_mlps ? rbits[2] : rnull, rnull};
    for (int c = 0; c < 4; ++c) {
      detail->first_copy[c] = first_copy(cond[c]).mean().item<double>();
      detail->second_copy[c] = second_copy(cond[c]).mean().item<double>();
    }
    detail->repeated_clean = vec(rbits[0].mean(0));
    detail->repeated_induction = vec(rbits[1].mean(0));
    if (has_mlps) detail->repeated_mlps = vec(rbits[2].mean(0));
    detail->span = S;
    detail->window_labels = window_label;
    detail->window_len = T;
  }
  return r;
}

}  // namespace ccc::experiments
