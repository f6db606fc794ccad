#include "experiments/lib/emergence.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include <torch/torch.h>

#include "circuits/ablation.h"
#include "circuits/head_detectors.h"
#include "circuits/icl.h"
#include "experiments/lib/competition.h"
#include "experiments/lib/scaling.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/bits.h"
#include "model/core/hooks.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

// The smooth monotone bases of the null, each scaled to [0, 1]: exponential approaches, power laws with an
// offset, and the straight line. Fitted as y ≈ a + b·g.
struct Basis {
  std::vector<double> g;
  std::string form;
};

std::vector<Basis> smooth_bases(const std::vector<double>& x) {
  const size_t n = x.size();
  const double x0 = x.front(), span = x.back() - x.front(), h = x[1] - x[0];
  std::vector<Basis> out;
  auto add = [&](std::vector<double> g, std::string form) {
    const auto [lo, hi] = std::minmax_element(g.begin(), g.end());
    const double a = *lo, w = *hi - *lo;
    if (!(w > 0) || !std::isfinite(w)) return;
    for (auto& v : g) v = (v - a) / w;
    out.push_back({std::move(g), std::move(form)});
  };
  char buf[96];
  for (int k = 0; k <= 30; ++k) {  // tau from span/100 to span*10
    const double tau = span * std::pow(10.0, -2.0 + 3.0 * k / 30.0);
    std::vector<double> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = std::exp(-(x[i] - x0) / tau);
    std::snprintf(buf, sizeof buf, "a + b*exp(-(x - %g)/%.4g)", x0, tau);
    add(std::move(g), buf);
  }
  for (int k = 1; k <= 20; ++k) {  // gamma 0.15 .. 3
    const double gamma = 0.15 * k;
    std::vector<double> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = std::pow(x[i] - x0 + h, -gamma);
    std::snprintf(buf, sizeof buf, "a + b*(x - %g + %g)^-%.2f", x0, h, gamma);
    add(std::move(g), buf);
  }
  add(x, "a + b*x");
  return out;
}

// Least squares of y on the columns [1, g] (jump index k < 0) or [1, g, 1{i >= k}]: the residual sum of
// squares and the jump's coefficient. Singular systems give +inf.
struct Fit {
  double sse = std::numeric_limits<double>::infinity(), jump = 0;
};

Fit solve(const std::vector<double>& g, const std::vector<double>& y, int64_t k) {
  const size_t n = y.size();
  double A[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, b[3] = {0, 0, 0}, yy = 0;
  const int p = k < 0 ? 2 : 3;
  for (size_t i = 0; i < n; ++i) {
    const double c[3] = {1.0, g[i], (k >= 0 && static_cast<int64_t>(i) >= k) ? 1.0 : 0.0};
    for (int r = 0; r < p; ++r) {
      b[r] += c[r] * y[i];
      for (int s = 0; s < p; ++s) A[r][s] += c[r] * c[s];
    }
    yy += y[i] * y[i];
  }
  // Gaussian elimination with partial pivoting on the p×p system
  double M[3][4];
  for (int r = 0; r < p; ++r) {
    for (int s = 0; s < p; ++s) M[r][s] = A[r][s];
    M[r][p] = b[r];
  }
  for (int c = 0; c < p; ++c) {
    int piv = c;
    for (int r = c + 1; r < p; ++r)
      if (std::fabs(M[r][c]) > std::fabs(M[piv][c])) piv = r;
    if (std::fabs(M[piv][c]) < 1e-12) return {};
    for (int s = 0; s <= p; ++s) std::swap(M[c][s], M[piv][s]);
    for (int r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = M[r][c] / M[c][c];
      for (int s = c; s <= p; ++s) M[r][s] -= f * M[c][s];
    }
  }
  double beta[3];
  for (int r = 0; r < p; ++r) beta[r] = M[r][p] / M[r][r];
  // the residuals directly (the normal-equation shortcut loses digits on near-exact fits)
  double sse = 0;
  for (size_t i = 0; i < n; ++i) {
    double f = beta[0] + beta[1] * g[i];
    if (p == 3 && static_cast<int64_t>(i) >= k) f += beta[2];
    sse += (y[i] - f) * (y[i] - f);
  }
  (void)yy;
  return {sse, p == 3 ? beta[2] : 0.0};
}

struct Fits {
  double smooth_sse = std::numeric_limits<double>::infinity(), two_sse = std::numeric_limits<double>::infinity();
  size_t smooth_basis = 0;
  int64_t index = -1;
  double jump = 0;
};

Fits fit_all(const std::vector<Basis>& bases, const std::vector<double>& y, bool two = true) {
  Fits f;
  const auto n = static_cast<int64_t>(y.size());
  for (size_t bi = 0; bi < bases.size(); ++bi) {
    const auto s = solve(bases[bi].g, y, -1);
    if (s.sse < f.smooth_sse) f.smooth_sse = s.sse, f.smooth_basis = bi;
    if (!two) continue;
    for (int64_t k = 1; k < n; ++k) {
      const auto t = solve(bases[bi].g, y, k);
      if (t.sse < f.two_sse) f.two_sse = t.sse, f.index = k, f.jump = t.jump;
    }
  }
  return f;
}

double bic(double sse, int64_t n, int params, double floor) {
  return static_cast<double>(n) * std::log(std::max(sse, floor) / static_cast<double>(n)) +
         params * std::log(static_cast<double>(n));
}

void check_series(const std::vector<double>& x, const std::vector<double>& y) {
  CCC_CHECK(x.size() == y.size(), "change point: ", x.size(), " x values for ", y.size(), " y values");
  for (size_t i = 1; i < x.size(); ++i) CCC_CHECK(x[i] > x[i - 1], "change point: x must increase strictly (", x[i - 1], ", ", x[i], ")");
  for (double v : y) CCC_CHECK(std::isfinite(v), "change point: a value is not finite");
}

std::string num_string(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", x);
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int64_t change_index(const std::vector<double>& x, const std::vector<double>& y) {
  check_series(x, y);
  if (x.size() < kMinChangePoints) return -1;
  return fit_all(smooth_bases(x), y).index;
}

ChangePoint fit_change_point(const std::vector<double>& x, const std::vector<double>& y, int64_t null_draws, uint64_t seed) {
  check_series(x, y);
  ChangePoint cp;
  if (x.size() < kMinChangePoints) return cp;
  const auto n = static_cast<int64_t>(y.size());
  const auto [lo, hi] = std::minmax_element(y.begin(), y.end());
  cp.range = *hi - *lo;
  const double floor = static_cast<double>(n) * std::pow(1e-9 * std::max(cp.range, 1e-12), 2);
  const auto bases = smooth_bases(x);
  const auto f = fit_all(bases, y);
  cp.index = f.index;
  cp.x = x[static_cast<size_t>(f.index)];
  cp.x_before = x[static_cast<size_t>(f.index - 1)];
  cp.jump = f.jump;
  cp.smooth = bases[f.smooth_basis].form;
  auto gain = [&](const Fits& q) { return bic(q.smooth_sse, n, 3, floor) - bic(q.two_sse, n, 5, floor); };
  cp.bic_gain = gain(f);
  // residual bootstrap of the smooth fit: how much BIC a jump gains on curves that are smooth by construction
  std::vector<double> smooth_y(y.size()), resid(y.size());
  {
    const auto& g = bases[f.smooth_basis].g;
    double sg = 0, sy = 0, sgg = 0, sgy = 0;
    for (size_t i = 0; i < y.size(); ++i) sg += g[i], sy += y[i], sgg += g[i] * g[i], sgy += g[i] * y[i];
    const double dn = static_cast<double>(n), det = dn * sgg - sg * sg;
    const double b = det != 0 ? (dn * sgy - sg * sy) / det : 0, a = (sy - b * sg) / dn;
    for (size_t i = 0; i < y.size(); ++i) smooth_y[i] = a + b * g[i], resid[i] = y[i] - smooth_y[i];
  }
  std::mt19937_64 rng(seed ^ 0xC4A96EULL);
  std::vector<double> yb(y.size());
  for (int64_t d = 0; d < null_draws; ++d) {
    for (size_t i = 0; i < y.size(); ++i) yb[i] = smooth_y[i] + resid[rng() % resid.size()];
    cp.null_gains.push_back(gain(fit_all(bases, yb)));
  }
  if (!cp.null_gains.empty()) {
    auto s = cp.null_gains;
    std::sort(s.begin(), s.end());
    cp.null_gain_high = quantile_sorted(s, 0.975);
  }
  cp.found = !cp.null_gains.empty() && cp.bic_gain > cp.null_gain_high && std::fabs(cp.jump) >= kMinJumpShare * cp.range &&
             cp.range > 0;
  return cp;
}

EmergenceSeriesInput checkpoint_series(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  CCC_CHECK(fs::is_directory(dir, ec), run_dir, ": no checkpoints/ directory (train with checkpoint_every > 0)");
  EmergenceSeriesInput s;
  s.name = fs::path(run_dir).lexically_normal().filename().string();
  if (s.name.empty()) s.name = fs::path(run_dir).lexically_normal().parent_path().filename().string();
  s.kind = "checkpoints";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    int64_t step = 0;
    if (n.rfind("step-", 0) == 0 && parse_int64(n.substr(5), &step) && step >= 0)
      s.points.emplace_back(static_cast<double>(step), e.path().string());
  }
  CCC_CHECK(!s.points.empty(), dir.string(), ": no step-N checkpoints");
  std::sort(s.points.begin(), s.points.end());
  return s;
}

EmergenceSeriesInput size_series(const std::string& name, const std::vector<std::string>& model_dirs) {
  EmergenceSeriesInput s;
  s.name = name;
  s.kind = "sizes";
  for (const auto& d : model_dirs) {
    const auto m = model::load_model(d);
    s.points.emplace_back(static_cast<double>(non_embedding_params(m.config)), d);
  }
  std::sort(s.points.begin(), s.points.end());
  for (size_t i = 1; i < s.points.size(); ++i)
    CCC_CHECK(s.points[i].first > s.points[i - 1].first, "emergence: ", s.points[i - 1].second, " and ", s.points[i].second,
              " have the same size; a size series needs distinct sizes");
  return s;
}

std::vector<int64_t> InductionCircuit::all() const {
  auto out = induction;
  out.insert(out.end(), prev_token.begin(), prev_token.end());
  return out;
}

std::vector<std::string> InductionCircuit::names(int64_t n_heads) const {
  std::vector<std::string> out;
  for (int64_t k : all()) out.push_back(std::to_string(k / n_heads) + "." + std::to_string(k % n_heads));
  return out;
}

InductionCircuit find_induction_circuit(model::LoadedModel& m, const EmergenceOptions& o) {
  const auto s = circuits::head_scores(m, o.len, o.probes, o.seed);
  const double top_ind = circuits::HeadScores::max_of(s.induction), top_prev = circuits::HeadScores::max_of(s.prev_token);
  InductionCircuit c;
  int64_t deepest = 0;
  for (size_t i = 0; i < s.induction.size(); ++i)
    if (s.induction[i] >= 0.5 * top_ind) c.induction.push_back(static_cast<int64_t>(i)), deepest = static_cast<int64_t>(i) / s.n_heads;
  for (size_t i = 0; i < s.prev_token.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    if (k / s.n_heads < deepest && s.prev_token[i] >= 0.5 * top_prev &&
        std::find(c.induction.begin(), c.induction.end(), k) == c.induction.end())
      c.prev_token.push_back(k);
  }
  return c;
}

EmergencePoint measure_emergence_point(model::LoadedModel& m, const InductionCircuit& circuit, const EmergenceOptions& o) {
  const auto components = circuit.all();
  const auto& heads = circuit.induction;
  torch::InferenceMode guard;
  m.model->eval();
  const auto& cfg = m.config;
  const int64_t L = o.len, P = o.probes, H = cfg.n_heads;
  CCC_CHECK(!heads.empty(), "emergence: no induction head given");
  EmergencePoint pt;
  pt.model = m.source;
  pt.fingerprint = m.fingerprint;
  auto tokens = circuits::probe_sequences(m, L, P, o.seed);
  model::HookSet hooks;
  hooks.cache("blocks.*.attn.hook_pattern");
  hooks.cache("blocks.*.attn.hook_z");
  if (!cfg.attn_only) hooks.cache("blocks.*.hook_mlp_out");
  auto logits = m.model->forward(tokens, {&hooks});
  auto clean = model::token_bits(logits.narrow(1, 0, 2 * L).to(torch::kFloat64), tokens.narrow(1, 1, 2 * L)).contiguous();
  // per-probe induction score of the components, largest scores over heads (means over probes)
  pt.p_induction.assign(static_cast<size_t>(P), 0.0);
  std::vector<double> max_prev(static_cast<size_t>(cfg.n_layers * H), 0.0), max_ind(max_prev.size(), 0.0);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const auto& pattern = hooks.cached().at(model::hook_name(l, model::kPattern));
    for (int64_t p = 0; p < P; ++p) {
      const auto s = circuits::pattern_scores(pattern.narrow(0, p, 1), L);
      for (int64_t h = 0; h < H; ++h) {
        max_prev[static_cast<size_t>(l * H + h)] += s[0][static_cast<size_t>(h)] / static_cast<double>(P);
        max_ind[static_cast<size_t>(l * H + h)] += s[1][static_cast<size_t>(h)] / static_cast<double>(P);
        if (std::find(heads.begin(), heads.end(), l * H + h) != heads.end())
          pt.p_induction[static_cast<size_t>(p)] += s[1][static_cast<size_t>(h)] / static_cast<double>(heads.size());
      }
    }
  }
  pt.max_prev_token = *std::max_element(max_prev.begin(), max_prev.end());
  pt.max_induction = *std::max_element(max_ind.begin(), max_ind.end());
  // mean-ablation reference: every candidate's mean over the probes' non-BOS positions
  circuits::Reference ref;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const auto z = model::hook_name(l, model::kZ);
    ref.mean[z] = hooks.cached().at(z).narrow(1, 1, 2 * L).to(torch::kFloat32).mean(std::vector<int64_t>{0, 1});
    if (!cfg.attn_only) {
      const auto mo = model::hook_name(l, model::kMlpOut);
      ref.mean[mo] = hooks.cached().at(mo).narrow(1, 1, 2 * L).to(torch::kFloat32).mean(std::vector<int64_t>{0, 1});
    }
  }
  ref.positions = P * 2 * L;
  auto ablated = [&](const std::vector<circuits::Component>& circuit) {
    model::HookSet h;
    circuits::install_ablation(h, cfg, {circuit}, 0, circuits::Mode::kMean, &ref, o.seed);
    auto lg = m.model->forward(tokens, {&h});
    return model::token_bits(lg.narrow(1, 0, 2 * L).to(torch::kFloat64), tokens.narrow(1, 1, 2 * L)).contiguous();
  };
  std::vector<circuits::Component> induction;
  for (int64_t c : components) induction.push_back({circuits::Component::Kind::kHead, c / H, c % H});
  auto abl = ablated(induction);
  // every head and MLP alone: the winner of each second-copy token
  std::vector<circuits::Component> cands;
  std::vector<bool> is_induction;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    for (int64_t h = 0; h < H; ++h) {
      cands.push_back({circuits::Component::Kind::kHead, l, h});
      is_induction.push_back(std::find(components.begin(), components.end(), l * H + h) != components.end());
    }
    if (!cfg.attn_only) cands.push_back({circuits::Component::Kind::kMlp, l, -1}), is_induction.push_back(false);
  }
  std::vector<torch::Tensor> per_cand;
  for (const auto& c : cands) per_cand.push_back(ablated({c}));
  auto ca = clean.accessor<double, 2>(), aa = abl.accessor<double, 2>();
  std::vector<torch::TensorAccessor<double, 2>> pa;
  for (auto& t : per_cand) pa.push_back(t.accessor<double, 2>());
  for (int64_t p = 0; p < P; ++p) {
    double rep = 0, fresh = 0, delta = 0;
    std::vector<std::vector<double>> d(static_cast<size_t>(L), std::vector<double>(cands.size()));
    for (int64_t i = 0; i < L; ++i) {
      fresh += ca[p][i] / static_cast<double>(L);
      rep += ca[p][L + i] / static_cast<double>(L);
      delta += (aa[p][L + i] - ca[p][L + i]) / static_cast<double>(L);
      for (size_t c = 0; c < cands.size(); ++c) d[static_cast<size_t>(i)][c] = pa[c][p][L + i] - ca[p][L + i];
    }
    std::vector<int> winner;
    dominance_of(d, &winner);
    int64_t with = 0, ind = 0;
    for (int w : winner)
      if (w >= 0) ++with, ind += is_induction[static_cast<size_t>(w)] ? 1 : 0;
    pt.p_repeated.push_back(rep), pt.p_fresh.push_back(fresh), pt.p_delta.push_back(delta);
    pt.p_winner.push_back(with > 0 ? static_cast<double>(ind) / static_cast<double>(with) : 0.0);
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  };
  pt.induction_score = mean(pt.p_induction);
  pt.bits_repeated = mean(pt.p_repeated), pt.bits_fresh = mean(pt.p_fresh);
  pt.circuit_delta_bits = mean(pt.p_delta), pt.winner_share = mean(pt.p_winner);
  if (!o.icl_sources.empty() && cfg.n_ctx >= 64) {
    circuits::IclOptions io;
    io.windows = o.icl_windows;
    io.spans = 1;
    io.random_spans = 1;
    io.late = std::min<int64_t>(200, cfg.n_ctx - 8);
    io.early = std::min<int64_t>(20, io.late / 4);
    io.seed = o.seed;
    pt.icl_score = circuits::measure_icl(m, o.icl_sources, io).icl_score;
  }
  return pt;
}

namespace {

std::vector<double> series_of(const std::vector<EmergencePoint>& pts, std::vector<double> EmergencePoint::*field,
                              const std::vector<size_t>& probes) {
  std::vector<double> out;
  for (const auto& p : pts) {
    double s = 0;
    for (size_t k : probes) s += (p.*field)[k];
    out.push_back(s / static_cast<double>(probes.size()));
  }
  return out;
}

Measurement boot_measurement(const std::string& name, double value, const std::vector<double>& draws, const std::string& unit,
                             int64_t probes) {
  Measurement m;
  m.name = name;
  m.value = value;
  m.unit = unit;
  if (draws.empty()) {
    m.ci_low = m.ci_high = value;
    m.ci_method = "none (no change point fitted)";
    return m;
  }
  set_percentile_ci(m, draws);
  m.ci_method = "percentile bootstrap over the " + std::to_string(probes) + " probe sequences (the same probes at every point), " +
                std::to_string(draws.size()) + " resamples";
  return m;
}

Measurement gain_null(const std::string& name, const ChangePoint& cp) {
  return over_draws(name, cp.null_gains, "BIC", "residual-bootstrap draws of the smooth monotone fit (no jump by construction)");
}

}  // namespace

Result run_emergence(const std::vector<EmergenceSeriesInput>& inputs, const EmergenceOptions& o, std::vector<EmergenceSeries>* detail) {
  CCC_CHECK(!inputs.empty(), "emergence: no series to measure");
  CCC_CHECK(o.probes >= 2 && o.len >= 2, "emergence: needs at least 2 probes of at least 2 bytes");
  for (size_t i = 0; i < inputs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      CCC_CHECK(inputs[i].name != inputs[j].name, "emergence: two series are named ", inputs[i].name, " (", inputs[j].points.front().second,
                ", ", inputs[i].points.front().second, ")");
  std::vector<EmergenceSeries> all;
  int64_t total = 0, done = 0;
  for (const auto& in : inputs) total += static_cast<int64_t>(in.points.size());
  for (const auto& in : inputs) {
    CCC_CHECK(!in.points.empty(), "emergence: series ", in.name, " has no point");
    EmergenceSeries s;
    s.name = in.name;
    s.kind = in.kind;
    InductionCircuit fixed;
    int64_t n_heads = 0;
    if (in.kind == "checkpoints") {  // fixed from the last checkpoint, before the series is scanned
      auto last = model::load_model(in.points.back().second);
      fixed = find_induction_circuit(last, o);
      n_heads = last.config.n_heads;
    }
    for (const auto& [x, dir] : in.points) {
      auto m = model::load_model(dir);
      CCC_CHECK(m.config.d_vocab_out == 256, "emergence: ", dir, " is not a byte-level model");
      CCC_CHECK(2 * o.len + 1 <= m.config.n_ctx, "emergence: probes of ", o.len, " bytes need ", 2 * o.len + 1,
                " positions; ", dir, " has a context of ", m.config.n_ctx);
      const auto c = in.kind == "checkpoints" ? fixed : find_induction_circuit(m, o);
      auto pt = measure_emergence_point(m, c, o);
      pt.x = x;
      s.points.push_back(std::move(pt));
      if (in.kind != "checkpoints") {  // a size series names the circuit of each size
        std::string names;
        for (const auto& n : c.names(m.config.n_heads)) names += (names.empty() ? "" : "+") + n;
        s.components.push_back(names);
      }
      if (o.progress) o.progress("models", ++done, total);
    }
    if (in.kind == "checkpoints") s.components = fixed.names(n_heads);
    std::vector<double> x, gaps;
    for (const auto& p : s.points) x.push_back(p.x);
    for (size_t i = 1; i < x.size(); ++i) gaps.push_back(x[i] - x[i - 1]);
    s.spacing = median(gaps);
    std::vector<size_t> identity(static_cast<size_t>(o.probes));
    for (size_t k = 0; k < identity.size(); ++k) identity[k] = k;
    const auto ab = series_of(s.points, &EmergencePoint::p_repeated, identity);
    const auto ci = series_of(s.points, &EmergencePoint::p_induction, identity);
    s.ability = fit_change_point(x, ab, o.null_draws, o.seed);
    s.circuit = fit_change_point(x, ci, o.null_draws, o.seed + 1);
    if (s.ability.index >= 0) {
      std::mt19937_64 rng(o.seed ^ 0xE3E26EULL);
      std::vector<size_t> draw(identity.size());
      for (int64_t b = 0; b < o.resamples; ++b) {
        for (auto& k : draw) k = static_cast<size_t>(rng() % identity.size());
        const auto ia = change_index(x, series_of(s.points, &EmergencePoint::p_repeated, draw));
        const auto ic = change_index(x, series_of(s.points, &EmergencePoint::p_induction, draw));
        s.boot_ability_x.push_back(x[static_cast<size_t>(ia)]);
        s.boot_circuit_x.push_back(x[static_cast<size_t>(ic)]);
        s.boot_lag.push_back(x[static_cast<size_t>(ia)] - x[static_cast<size_t>(ic)]);
        if (o.progress && (b + 1) % 100 == 0) o.progress("bootstrap " + s.name, b + 1, o.resamples);
      }
    }
    all.push_back(std::move(s));
  }
  Result r;
  r.experiment = "emergence";
  r.hypothesis = "An ability that appears abruptly appears when its circuit starts winning: the change point of the bits paid for "
                 "repeated bytes falls in the same checkpoint interval as the change point of the induction components' score "
                 "(the lag's CI within one interval), and both beat a smooth-improvement null.";
  r.claim = "Emergence is a competition won: an ability appears abruptly when the circuit that carries it starts to win.";
  r.headline = "lag_steps";
  r.seed = o.seed;
  const EmergenceSeries* primary = nullptr;
  for (const auto& s : all) {
    const bool first = primary == nullptr && s.ability.index >= 0;
    if (first) primary = &s;
    const std::string sfx = first ? "" : "_" + s.name;
    const std::string unit = s.kind == "checkpoints" ? "steps" : "non-embedding parameters";
    if (s.ability.index < 0) continue;  // too short for a change point: its rows are reported, not fitted
    r.measurements.push_back(boot_measurement("ability_change_step" + sfx, s.ability.x, s.boot_ability_x, unit, o.probes));
    r.measurements.push_back(boot_measurement("circuit_change_step" + sfx, s.circuit.x, s.boot_circuit_x, unit, o.probes));
    r.measurements.push_back(boot_measurement("lag_steps" + sfx, s.ability.x - s.circuit.x, s.boot_lag, unit, o.probes));
    Measurement ga{"ability_bic_gain" + sfx, s.ability.bic_gain, s.ability.bic_gain, s.ability.bic_gain, "BIC",
                   "the fit on the measured series (its null: residual-bootstrap draws of the smooth fit)"};
    Measurement gc{"circuit_bic_gain" + sfx, s.circuit.bic_gain, s.circuit.bic_gain, s.circuit.bic_gain, "BIC", ga.ci_method};
    r.measurements.push_back(ga);
    r.measurements.push_back(gc);
    if (!s.ability.null_gains.empty()) r.null.push_back(gain_null("ability_bic_gain" + sfx, s.ability));
    if (!s.circuit.null_gains.empty()) r.null.push_back(gain_null("circuit_bic_gain" + sfx, s.circuit));
  }
  CCC_CHECK(primary != nullptr, "emergence: no series has the ", kMinChangePoints, " points a change point needs");
  // the transient side on the longest checkpoint series: do the winner share and the copy gain fall after their peak?
  const EmergenceSeries* longest = nullptr;
  for (const auto& s : all)
    if (s.kind == "checkpoints" && (longest == nullptr || s.points.size() > longest->points.size())) longest = &s;
  if (longest != nullptr && longest->points.size() >= 2) {
    auto fall = [&](const std::string& name, const std::function<double(const EmergencePoint&, size_t)>& at, const std::string& unit) {
      const size_t n = longest->points.size();
      auto mean_at = [&](size_t i, const std::vector<size_t>& probes) {
        double s = 0;
        for (size_t k : probes) s += at(longest->points[i], k);
        return s / static_cast<double>(probes.size());
      };
      std::vector<size_t> identity(static_cast<size_t>(o.probes));
      for (size_t k = 0; k < identity.size(); ++k) identity[k] = k;
      size_t peak = 0;
      for (size_t i = 1; i < n; ++i)
        if (mean_at(i, identity) > mean_at(peak, identity)) peak = i;
      std::vector<double> draws;
      std::mt19937_64 rng(o.seed ^ 0xFA11ULL);
      std::vector<size_t> draw(identity.size());
      for (int64_t b = 0; b < o.resamples; ++b) {
        for (auto& k : draw) k = static_cast<size_t>(rng() % identity.size());
        draws.push_back(mean_at(peak, draw) - mean_at(n - 1, draw));
      }
      auto m = boot_measurement(name, mean_at(peak, identity) - mean_at(n - 1, identity), draws, unit, o.probes);
      m.ci_method += "; peak at step " + num_string(longest->points[peak].x) + " of " + longest->name + " (fixed on the full data)";
      r.measurements.push_back(m);
    };
    fall("winner_share_fall_after_peak", [](const EmergencePoint& p, size_t k) { return p.p_winner[k]; }, "share");
    fall("copy_gain_fall_after_peak", [](const EmergencePoint& p, size_t k) { return p.p_fresh[k] - p.p_repeated[k]; },
         "bits_per_byte");
  }
  // verdict on the primary series
  const auto& s = *primary;
  const auto lag = r.measurements[2];
  const double d = s.spacing;
  std::ostringstream rule;
  rule << "supported when both change points beat the smooth null (BIC gain above the 97.5th percentile of its residual-bootstrap "
          "draws, jump >= " << kMinJumpShare << " of the range) and the lag's 95% CI lies within one checkpoint interval (+-"
       << d << "); not_supported when the lag's CI lies entirely beyond one interval; inconclusive otherwise (series " << s.name << ")";
  r.verdict_rule = rule.str();
  if (s.ability.found && s.circuit.found && lag.ci_low >= -d && lag.ci_high <= d) r.verdict = Verdict::kSupported;
  else if (lag.ci_low > d || lag.ci_high < -d) r.verdict = Verdict::kNotSupported;
  else r.verdict = Verdict::kInconclusive;
  for (size_t i = 0; i < all.size(); ++i) r.model += (i ? "," : "") + all[i].name;
  if (detail != nullptr) *detail = std::move(all);
  return r;
}

}  // namespace ccc::experiments
