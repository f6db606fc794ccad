#include "experiments/lib/result.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "model/base/error.h"

namespace ccc::experiments {

nlohmann::json Measurement::to_json() const {
  return {{"name", name}, {"value", value},         {"ci_low", ci_low},
          {"ci_high", ci_high}, {"unit", unit}, {"ci_method", ci_method}};
}

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::kSupported: return "supported";
    case Verdict::kNotSupported: return "not_supported";
    case Verdict::kInconclusive: break;
  }
  return "inconclusive";
}

double quantile_sorted(const std::vector<double>& sorted, double p) {
  CCC_CHECK(!sorted.empty(), "quantile of no values");
  return sorted[static_cast<size_t>(std::lround(p * static_cast<double>(sorted.size() - 1)))];
}

void set_percentile_ci(Measurement& m, std::vector<double> draws) {
  std::sort(draws.begin(), draws.end());
  m.ci_low = quantile_sorted(draws, 0.025);
  m.ci_high = quantile_sorted(draws, 0.975);
}

Measurement bootstrap_mean(const std::string& name, const std::vector<double>& samples, const std::string& unit,
                           int64_t resamples, uint64_t seed) {
  CCC_CHECK(!samples.empty(), "bootstrap_mean(", name, "): no samples");
  CCC_CHECK(resamples >= 1, "bootstrap_mean(", name, "): resamples must be >= 1");
  const size_t n = samples.size();
  double sum = 0;
  for (double x : samples) sum += x;
  Measurement m;
  m.name = name;
  m.unit = unit;
  m.value = sum / static_cast<double>(n);
  std::mt19937_64 rng(seed);
  std::vector<double> stat(static_cast<size_t>(resamples));
  for (auto& s : stat) {
    double a = 0;
    for (size_t k = 0; k < n; ++k) a += samples[static_cast<size_t>(rng() % n)];
    s = a / static_cast<double>(n);
  }
  set_percentile_ci(m, std::move(stat));
  std::ostringstream how;
  how << "percentile bootstrap of the mean over " << n << " samples, " << resamples << " resamples";
  m.ci_method = how.str();
  return m;
}

Measurement over_draws(const std::string& name, std::vector<double> draws, const std::string& unit,
                       const std::string& what) {
  CCC_CHECK(!draws.empty(), name, ": no null draws");
  Measurement m;
  m.name = name;
  m.unit = unit;
  double sum = 0;
  for (double x : draws) sum += x;
  m.value = sum / static_cast<double>(draws.size());
  m.ci_method = "2.5 / 97.5 percentiles over " + std::to_string(draws.size()) + " " + what;
  set_percentile_ci(m, std::move(draws));
  return m;
}

Verdict decide(const Measurement& effect, const Measurement& null, int direction, double min_gap) {
  CCC_CHECK(direction == 1 || direction == -1, "decide: direction must be +1 or -1");
  const double d = direction;
  // put both on the hypothesis' axis: larger = more in favour
  const double e_lo = d > 0 ? effect.ci_low : -effect.ci_high, e_hi = d > 0 ? effect.ci_high : -effect.ci_low;
  const double n_lo = d > 0 ? null.ci_low : -null.ci_high, n_hi = d > 0 ? null.ci_high : -null.ci_low;
  const double gap = d * (effect.value - null.value);
  if (e_lo > n_hi && gap >= min_gap) return Verdict::kSupported;
  if (e_hi < n_lo) return Verdict::kNotSupported;
  const bool overlap = e_lo <= n_hi && n_lo <= e_hi;
  if (overlap && (e_hi - e_lo) < min_gap && (n_hi - n_lo) < min_gap) return Verdict::kNotSupported;
  return Verdict::kInconclusive;
}

std::string rule_text(int direction, double min_gap, const std::string& effect, const std::string& null) {
  std::ostringstream r;
  const char* side = direction > 0 ? "above" : "below";
  r << "supported if the 95% CI of " << effect << " lies entirely " << side << " the 95% CI of " << null
    << " and the two differ by at least " << min_gap << "; not_supported if it lies entirely on the other side, or "
    << "the CIs overlap and both are narrower than " << min_gap << "; inconclusive otherwise";
  return r.str();
}

nlohmann::json Result::to_json() const {
  nlohmann::json ms = nlohmann::json::object(), ns = nlohmann::json::object();
  for (const auto& m : measurements) {
    CCC_CHECK(!ms.contains(m.name), experiment, ": measurement ", m.name, " given twice");
    ms[m.name] = m.to_json();
  }
  for (const auto& m : null) {
    CCC_CHECK(!ns.contains(m.name), experiment, ": null statistic ", m.name, " given twice");
    ns[m.name] = m.to_json();
  }
  return {{"experiment", experiment},
          {"hypothesis", hypothesis},
          {"claim", claim},
          {"headline", headline},
          {"model", model},
          {"fingerprint", model_fingerprint},
          {"input", input},
          {"input_sha256", input_sha256},
          {"seed", seed},
          {"measurements", ms},
          {"null", ns},
          {"verdict", to_string(verdict)},
          {"verdict_rule", verdict_rule}};
}

}  // namespace ccc::experiments
