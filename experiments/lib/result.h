#pragma once
// The experiment library's common currency. An experiment is a function
//   Result run_<name>(model::LoadedModel& m, std::string_view text, const <Name>Options& o)
// that measures named effects (each with a CI), the same statistics under a null, and decides a verdict by
// a rule fixed before the data is seen; commands and reports render the Result (JSON, CSV, PNG, Markdown)
// and never recompute it. Same inputs and seed -> identical result (timings aside).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccc::experiments {

/// One effect size with its 95% CI.
struct Measurement {
  std::string name;
  double value = 0, ci_low = 0, ci_high = 0;
  std::string unit;       ///< "bits", "bits_per_byte", "share", ...
  std::string ci_method;  ///< how the CI was drawn, e.g. "percentile bootstrap over 64 spans, 2000 resamples"
  nlohmann::json to_json() const;
};

enum class Verdict { kSupported, kNotSupported, kInconclusive };
std::string to_string(Verdict v);  ///< "supported" | "not_supported" | "inconclusive"

/// Percentile-bootstrap 95% CI of the mean of `samples` (resampled with replacement, seeded): value = the
/// sample mean. Throws ccc::Error on an empty sample or resamples < 1.
Measurement bootstrap_mean(const std::string& name, const std::vector<double>& samples, const std::string& unit,
                           int64_t resamples, uint64_t seed);

/// The p-quantile of ascending `sorted` by nearest rank (index round(p·(n−1))). Throws ccc::Error when empty.
double quantile_sorted(const std::vector<double>& sorted, double p);
/// Sorts `draws` and sets m.ci_low / m.ci_high to their 2.5 / 97.5 percentiles (quantile_sorted).
void set_percentile_ci(Measurement& m, std::vector<double> draws);

/// A null statistic from its draws: value = their mean, CI = their 2.5 / 97.5 percentiles; `what` names
/// the draws in ci_method ("null draws", "random component sets of the same size"). Throws ccc::Error on
/// no draws.
Measurement over_draws(const std::string& name, std::vector<double> draws, const std::string& unit,
                       const std::string& what = "null draws");

/// The library's verdict rule, stated in `rule_text`: with `direction` +1 (the hypothesis predicts effect >
/// null) or −1 (effect < null): supported when the effect's CI lies entirely beyond the null's CI in that
/// direction and the gap between the two values is at least `min_gap`; not_supported when the effect's
/// CI lies entirely on the other side or the CIs overlap with both CIs narrower than `min_gap` (a
/// difference that small is ruled out); inconclusive otherwise.
Verdict decide(const Measurement& effect, const Measurement& null, int direction, double min_gap);
std::string rule_text(int direction, double min_gap, const std::string& effect, const std::string& null);

/// What every experiment returns.
struct Result {
  std::string experiment;   ///< its name, as `ccc experiment NAME`
  std::string hypothesis;   ///< one sentence, fixed before the data is seen
  std::string claim;        ///< the claim of the conjecture it tests (the report's summary table)
  std::string headline;     ///< the measurement the verdict turns on (its name in `measurements`)
  std::string model, model_fingerprint, input, input_sha256;
  uint64_t seed = 0;
  std::vector<Measurement> measurements;  ///< effect sizes
  std::vector<Measurement> null;          ///< the same statistics under the null
  Verdict verdict = Verdict::kInconclusive;
  std::string verdict_rule;               ///< the rule that decided it, in words
  /// The result.json body (schema ccc.experiment/1 once stamped): every field above, measurements and
  /// null as objects keyed by name, each {name, value, ci_low, ci_high, unit, ci_method}. Throws
  /// ccc::Error on a name given twice.
  nlohmann::json to_json() const;
};

}  // namespace ccc::experiments
