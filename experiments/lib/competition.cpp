#include "experiments/lib/competition.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>

#include "analysis/labels.h"
#include "circuits/discovery.h"
#include "circuits/sweep.h"
#include "model/base/error.h"
#include "model/base/segments.h"
#include "model/scoring/streams.h"

namespace ccc::experiments {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kBlock = 64;  // tokens per block of the block shuffles and block bootstraps

// The character classes of the winner table and the MI, in priority order (a token takes the first that
// applies); "other" last.
const std::vector<std::string> kClasses = {"repeated", "newline", "space", "digit", "upper",
                                           "punct",    "non_ascii", "lower", "other"};


struct Stats {
  double dominance_mean = 0, clear_share = 0;
};

Stats stats_of(const std::vector<double>& dom) {
  Stats s;
  double n = 0;
  for (double d : dom) {
    if (std::isnan(d)) continue;
    s.dominance_mean += d;
    s.clear_share += d >= 0.5;
    n += 1;
  }
  if (n > 0) s.dominance_mean /= n, s.clear_share /= n;
  return s;
}

// Δ with some candidate columns left out.
std::vector<std::vector<double>> without(const std::vector<std::vector<double>>& delta, const std::vector<size_t>& drop) {
  std::vector<std::vector<double>> out(delta.size());
  for (size_t t = 0; t < delta.size(); ++t)
    for (size_t c = 0; c < delta[t].size(); ++c)
      if (std::find(drop.begin(), drop.end(), c) == drop.end()) out[t].push_back(delta[t][c]);
  return out;
}

// MI of winner and class with its block-bootstrap CI (effect) and its block-shuffled null.
std::pair<Measurement, Measurement> winner_mi(const std::vector<int>& winner, const std::vector<int>& cls,
                                              const std::string& name, int64_t draws, int64_t resamples, uint64_t seed) {
  const size_t T = winner.size(), nb = (T + kBlock - 1) / kBlock;
  Measurement effect;
  effect.name = name;
  effect.unit = "bits";
  effect.value = mutual_information_bits(winner, cls);
  std::mt19937_64 rng(seed ^ 0x4D1ULL);
  std::vector<double> boot;
  const int64_t R = std::min<int64_t>(resamples, 200);
  for (int64_t r = 0; r < R; ++r) {
    std::vector<int> a, b;
    for (size_t k = 0; k < nb; ++k) {
      const size_t j = static_cast<size_t>(rng() % nb);
      for (size_t t = j * kBlock; t < std::min(T, (j + 1) * kBlock); ++t) a.push_back(winner[t]), b.push_back(cls[t]);
    }
    boot.push_back(mutual_information_bits(a, b));
  }
  set_percentile_ci(effect, boot);
  effect.ci_method = "percentile block bootstrap over " + std::to_string(nb) + " blocks of " + std::to_string(kBlock) +
                     " tokens, " + std::to_string(R) + " resamples";
  std::vector<double> null;
  for (int64_t d = 0; d < draws; ++d) {  // the classes shuffled in blocks: their local structure kept
    std::vector<size_t> order(nb);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int> shuffled;
    for (size_t j : order)
      for (size_t t = j * kBlock; t < std::min(T, (j + 1) * kBlock); ++t) shuffled.push_back(cls[t]);
    null.push_back(mutual_information_bits(winner, shuffled));
  }
  return {effect, over_draws(name, null, "bits")};
}

}  // namespace

std::vector<double> dominance_of(const std::vector<std::vector<double>>& delta, std::vector<int>* winner) {
  std::vector<double> dom(delta.size(), kNaN);
  if (winner) winner->assign(delta.size(), -1);
  for (size_t t = 0; t < delta.size(); ++t) {
    double sum = 0, best = 0;
    int arg = -1;
    for (size_t c = 0; c < delta[t].size(); ++c) {
      const double d = std::max(0.0, delta[t][c]);
      sum += d;
      if (d > best) best = d, arg = static_cast<int>(c);
    }
    if (sum > 0) {
      dom[t] = best / sum;
      if (winner) (*winner)[t] = arg;
    }
  }
  return dom;
}

double mutual_information_bits(const std::vector<int>& a, const std::vector<int>& b) {
  CCC_CHECK(a.size() == b.size(), "mutual information: ", a.size(), " vs ", b.size(), " entries");
  std::map<int, double> pa, pb;
  std::map<std::pair<int, int>, double> pab;
  double n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] < 0) continue;
    pa[a[i]] += 1, pb[b[i]] += 1, pab[{a[i], b[i]}] += 1, n += 1;
  }
  double mi = 0;
  for (const auto& [k, c] : pab) mi += c / n * std::log2(c * n / (pa[k.first] * pb[k.second]));
  return n > 0 ? std::max(0.0, mi) : 0.0;
}

Result run_competition(model::LoadedModel& m, std::string_view text, const CompetitionOptions& o,
                       CompetitionDetail* detail) {
  CCC_CHECK(o.mode == circuits::Mode::kMean || o.mode == circuits::Mode::kZero,
            "competition: --mode mean or zero (a resample or corrupt ablation is not a single replacement)");
  Result r;
  r.experiment = "competition";
  r.hypothesis = "On natural text one component decides each token: the token's costliest ablation carries most of "
                 "its ablation cost (dominance >= 0.5) more often than when the components' costs are uncoupled.";
  r.claim = "Many sub-circuits compete at inference and the winner decides the output.";
  r.headline = "clear_winner_share";
  r.seed = o.seed;
  // candidates: every head and MLP, then the extras
  auto cands = circuits::discovery_components(m.config);
  for (const auto& c : o.extra)
    if (std::find(cands.begin(), cands.end(), c) == cands.end()) cands.push_back(c);
  circuits::ScoringRun run;
  run.mode = o.mode;
  run.streams = o.streams;
  run.window = o.window;
  run.seed = o.seed;
  std::unique_ptr<circuits::Reference> ref;
  if (o.mode == circuits::Mode::kMean)
    ref = std::make_unique<circuits::Reference>(
        circuits::collect_reference(m, text, cands, o.mode, o.streams, o.window, o.seed));
  const auto clean = circuits::ablated_bits(m, text, run, {}, nullptr);
  auto report = [&](const char* phase) {
    return [&o, phase](int64_t done, int64_t total) {
      if (o.progress) o.progress(phase, done, total);
    };
  };
  const auto t_sweep = std::chrono::steady_clock::now();
  const auto cols = circuits::sweep_bits(m, text, run, cands, ref.get(), circuits::SweepPath::kShared, 256,
                                         report("ablations"));
  const double sweep_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_sweep).count();
  // the unbatched way on a sample (evenly spread over the candidates), timed, and compared token by token
  double naive_seconds = 0, naive_diff = 0;
  const int64_t n_naive = std::min<int64_t>(o.naive_sample, static_cast<int64_t>(cands.size()));
  for (int64_t k = 0; k < n_naive; ++k) {
    const size_t c = static_cast<size_t>(k) * cands.size() / static_cast<size_t>(n_naive);
    const auto t0 = std::chrono::steady_clock::now();
    const auto one = circuits::ablated_bits(m, text, run, {cands[c]}, ref.get());
    naive_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t t = 0; t < one.size() && t < cols[c].size(); ++t) naive_diff = std::max(naive_diff, std::abs(one[t] - cols[c][t]));
  }
  const size_t T = clean.size(), C = cands.size();
  CCC_CHECK(T >= 2 * kBlock, "competition: the text has ", T, " coded tokens; at least ", 2 * kBlock, " are needed");
  std::vector<std::vector<double>> delta(T, std::vector<double>(C));
  for (size_t c = 0; c < C; ++c)
    for (size_t t = 0; t < T; ++t) delta[t][c] = cols[c][t] - clean[t];
  // per-token byte offsets and character classes (the run's segmentation)
  const auto sopt = run.stream_options();
  const int64_t B = model::resolve_streams(text.size(), o.streams);
  const int64_t W = model::resolve_window_policy(m.config, sopt).first;
  std::vector<std::vector<int64_t>> offsets;
  (void)model::segment_tokens(m, text, B, &offsets);
  std::vector<int64_t> offs, stream_start;
  for (size_t s = 0; s < offsets.size(); ++s)
    for (size_t i = 1; i < offsets[s].size(); ++i) {
      offs.push_back(offsets[s][i]);
      stream_start.push_back(static_cast<int64_t>(segment_range(text.size(), static_cast<uint64_t>(B), s).first));
    }
  CCC_CHECK(offs.size() == T, "competition: ", offs.size(), " token offsets for ", T, " coded tokens");
  const auto feats = analysis::auto_features(text, offs, stream_start, W);
  auto feature = [&](const std::string& name) -> const std::vector<uint8_t>& {
    for (const auto& f : feats)
      if (f.name == name) return f.on;
    CCC_FAIL("competition: no automatic feature ", name);
  };
  std::vector<int> cls(T, static_cast<int>(kClasses.size() - 1));
  for (size_t t = 0; t < T; ++t)
    for (size_t k = 0; k + 1 < kClasses.size(); ++k)
      if (feature(kClasses[k])[t]) {
        cls[t] = static_cast<int>(k);
        break;
      }

  // dominance, clear winners, their null; with the first MLP a candidate and as part of the embedding
  std::mt19937_64 rng(o.seed ^ 0xC0FFEEULL);
  const auto first_mlp = std::find(cands.begin(), cands.end(), circuits::Component{circuits::Component::Kind::kMlp, 0, -1});
  std::vector<std::pair<std::string, std::vector<size_t>>> variants = {{"", {}}};
  if (first_mlp != cands.end()) variants.push_back({"_mlp0_as_embedding", {static_cast<size_t>(first_mlp - cands.begin())}});
  std::vector<int> winner;
  std::vector<double> dom, null_dom;
  for (const auto& [suffix, drop] : variants) {
    const auto d = drop.empty() ? delta : without(delta, drop);
    std::vector<int> win;
    const auto dm = dominance_of(d, &win);
    std::vector<double> present, clear;
    for (double x : dm)
      if (!std::isnan(x)) present.push_back(x), clear.push_back(x >= 0.5 ? 1.0 : 0.0);
    CCC_CHECK(!present.empty(), "competition: no token has a positive ablation cost");
    r.measurements.push_back(bootstrap_mean("dominance_mean" + suffix, present, "share", o.resamples, o.seed));
    r.measurements.push_back(bootstrap_mean("clear_winner_share" + suffix, clear, "share", o.resamples, o.seed + 1));
    std::vector<double> null_mean, null_clear;
    for (int64_t k = 0; k < o.null_draws; ++k) {
      auto p = d;
      for (size_t c = 0; c < (d.empty() ? 0 : d[0].size()); ++c) {  // each column permuted on its own
        std::vector<size_t> perm(T);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (size_t t = 0; t < T; ++t) p[t][c] = d[perm[t]][c];
      }
      const auto pd = dominance_of(p);
      const Stats s = stats_of(pd);
      null_mean.push_back(s.dominance_mean);
      null_clear.push_back(s.clear_share);
      if (k == 0 && suffix.empty()) null_dom = pd;
    }
    r.null.push_back(over_draws("dominance_mean" + suffix, null_mean, "share"));
    r.null.push_back(over_draws("clear_winner_share" + suffix, null_clear, "share"));
    auto [mi, mi_null] = winner_mi(win, cls, "winner_feature_mi_bits" + suffix, o.null_draws, o.resamples, o.seed);
    r.measurements.push_back(mi);
    r.null.push_back(mi_null);
    if (suffix.empty()) winner = win, dom = dm;
  }

  // pair interactions among the top components by mean Δ, and as many random pairs
  std::vector<double> mean_delta(C, 0);
  for (size_t c = 0; c < C; ++c) {
    for (size_t t = 0; t < T; ++t) mean_delta[c] += delta[t][c];
    mean_delta[c] /= static_cast<double>(T);
  }
  std::vector<size_t> by_mean(C);
  std::iota(by_mean.begin(), by_mean.end(), 0);
  std::stable_sort(by_mean.begin(), by_mean.end(), [&](size_t a, size_t b) { return mean_delta[a] > mean_delta[b]; });
  const size_t K = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(0, o.pair_top)), C);
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < K; ++i)
    for (size_t j = i + 1; j < K; ++j) pairs.emplace_back(by_mean[i], by_mean[j]);
  const size_t n_top = pairs.size();
  for (size_t k = 0; k < n_top && C >= 2; ++k) {
    size_t a = static_cast<size_t>(rng() % C), b = static_cast<size_t>(rng() % (C - 1));
    if (b >= a) ++b;
    pairs.emplace_back(std::min(a, b), std::max(a, b));
  }
  std::vector<CompetitionDetail::Pair> pair_rows;
  std::vector<double> red_top, inter_top, red_rnd, inter_rnd;
  std::vector<std::vector<circuits::Component>> pair_circuits;
  for (const auto& [a, b] : pairs) pair_circuits.push_back({cands[a], cands[b]});
  const auto pair_bits = circuits::circuits_bits(m, text, run, pair_circuits, ref.get(), 256, report("pairs"));  // batched
  for (size_t k = 0; k < pairs.size(); ++k) {
    const auto [a, b] = pairs[k];
    const auto& both = pair_bits[k];
    std::vector<double> additive(T);  // clean + Δ(A) + Δ(B): what no interaction would give
    for (size_t t = 0; t < T; ++t) additive[t] = cols[a][t] + cols[b][t] - clean[t];
    const auto ds = circuits::delta_stats(additive, both, static_cast<int64_t>(text.size()), o.resamples, o.seed + k);
    const double scale = static_cast<double>(text.size());
    CompetitionDetail::Pair p{cands[a].name(), cands[b].name(), k >= n_top, ds.delta_bits, ds.ci_low * scale, ds.ci_high * scale};
    (k < n_top ? red_top : red_rnd).push_back(p.ci_low > 0 ? 1.0 : 0.0);
    (k < n_top ? inter_top : inter_rnd).push_back(p.ci_high < 0 ? 1.0 : 0.0);
    pair_rows.push_back(p);
  }
  if (!red_top.empty()) {
    r.measurements.push_back(bootstrap_mean("redundant_pair_share", red_top, "share", o.resamples, o.seed + 2));
    r.measurements.push_back(bootstrap_mean("interfering_pair_share", inter_top, "share", o.resamples, o.seed + 3));
    r.null.push_back(bootstrap_mean("redundant_pair_share", red_rnd, "share", o.resamples, o.seed + 4));
    r.null.push_back(bootstrap_mean("interfering_pair_share", inter_rnd, "share", o.resamples, o.seed + 5));
  }

  // the verdict: clear winners beyond the uncoupled null, with the first MLP a candidate and (when the
  // model has one) as part of the embedding — both readings must agree, else inconclusive
  auto find = [](const std::vector<Measurement>& v, const std::string& name) -> const Measurement& {
    for (const auto& x : v)
      if (x.name == name) return x;
    CCC_FAIL("competition: no statistic ", name);
  };
  const Verdict as_candidate = decide(find(r.measurements, "clear_winner_share"), find(r.null, "clear_winner_share"), +1, 0.05);
  r.verdict = as_candidate;
  r.verdict_rule = rule_text(+1, 0.05, "clear_winner_share", "its column-permutation null");
  if (variants.size() > 1) {
    const std::string name = "clear_winner_share" + variants[1].first;
    const Verdict as_embedding = decide(find(r.measurements, name), find(r.null, name), +1, 0.05);
    r.verdict = as_candidate == as_embedding ? as_candidate : Verdict::kInconclusive;
    r.verdict_rule = "both readings must agree (else inconclusive): with the first MLP a candidate (" +
                     to_string(as_candidate) + "), " + r.verdict_rule + "; and with it part of the embedding (" +
                     to_string(as_embedding) + "), the same rule on " + name;
  }

  if (detail != nullptr) {
    detail->candidates.clear();
    for (const auto& c : cands) detail->candidates.push_back(c.name());
    detail->byte_offset = offs;
    detail->winner = winner;
    detail->dominance = dom;
    detail->null_dominance = null_dom;
    detail->token_class.clear();
    for (int c : cls) detail->token_class.push_back(kClasses[static_cast<size_t>(c)]);
    // winners: share of wins, and the class or byte label their wins are most enriched in
    std::vector<std::pair<std::string, std::vector<uint8_t>>> labels;
    for (size_t k = 0; k + 1 < kClasses.size(); ++k) {
      std::vector<uint8_t> on(T);
      for (size_t t = 0; t < T; ++t) on[t] = cls[t] == static_cast<int>(k);
      labels.emplace_back(kClasses[k], std::move(on));
    }
    for (const auto& [name, bytes] : o.byte_labels) {
      std::vector<uint8_t> on(T);
      for (size_t t = 0; t < T; ++t) on[t] = offs[t] >= 0 && static_cast<size_t>(offs[t]) < bytes.size() && bytes[offs[t]];
      labels.emplace_back(name, std::move(on));
    }
    double with_winner = 0;
    for (int w : winner) with_winner += w >= 0;
    detail->winners.clear();
    for (size_t c = 0; c < C; ++c) {
      CompetitionDetail::Winner w;
      w.component = cands[c].name();
      w.mean_delta_bits = mean_delta[c];
      double wins = 0;
      for (int x : winner) wins += x == static_cast<int>(c);
      w.share_of_tokens = with_winner > 0 ? wins / with_winner : 0;
      for (const auto& [name, on] : labels) {
        double in_wins = 0, base = 0;
        for (size_t t = 0; t < T; ++t) {
          base += on[t];
          if (winner[t] == static_cast<int>(c)) in_wins += on[t];
        }
        if (wins < 5 || base == 0) continue;  // too few wins to call an enrichment
        const double lift = (in_wins / wins) / (base / static_cast<double>(T));
        if (lift > w.lift) w.lift = lift, w.top_feature = name;
      }
      detail->winners.push_back(w);
    }
    std::stable_sort(detail->winners.begin(), detail->winners.end(),
                     [](const auto& a, const auto& b) { return a.share_of_tokens > b.share_of_tokens; });
    detail->pairs = pair_rows;
    detail->sweep_seconds = sweep_seconds;
    detail->naive_sample = n_naive;
    detail->naive_seconds_per_component = n_naive > 0 ? naive_seconds / static_cast<double>(n_naive) : 0;
    detail->naive_max_abs_diff = naive_diff;
    detail->speedup = detail->naive_seconds_per_component * static_cast<double>(cands.size()) / std::max(1e-9, sweep_seconds);
  }
  return r;
}

}  // namespace ccc::experiments
