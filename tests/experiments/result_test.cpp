// The experiment library's statistics: bootstrap CIs, the verdict rule and result.json, checked against
// values computed independently here (closed forms, a second implementation of the percentile bootstrap).

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "experiments/lib/result.h"
#include "model/base/error.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

Measurement m(double v, double lo, double hi) {
  Measurement x;
  x.value = v;
  x.ci_low = lo;
  x.ci_high = hi;
  return x;
}

TEST(ExperimentResult, BootstrapMeanIsTheSampleMeanWithAPercentileInterval) {
  std::vector<double> s;
  std::mt19937_64 g(3);
  std::normal_distribution<double> nd(2.0, 1.0);
  for (int i = 0; i < 400; ++i) s.push_back(nd(g));
  const auto b = bootstrap_mean("x", s, "bits", 4000, 7);
  double mean = 0, var = 0;
  for (double x : s) mean += x;
  mean /= s.size();
  for (double x : s) var += (x - mean) * (x - mean);
  const double se = std::sqrt(var / (s.size() - 1) / s.size());
  EXPECT_DOUBLE_EQ(b.value, mean);
  // the percentile interval of a mean of 400 normal draws is mean ± 1.96 SE up to resampling noise
  EXPECT_NEAR(b.ci_low, mean - 1.96 * se, 0.15 * se);
  EXPECT_NEAR(b.ci_high, mean + 1.96 * se, 0.15 * se);
  EXPECT_EQ(b.unit, "bits");
  EXPECT_NE(b.ci_method.find("400 samples"), std::string::npos) << b.ci_method;
  // seeded: the same seed gives the same interval, another seed (almost surely) another
  const auto again = bootstrap_mean("x", s, "bits", 4000, 7), other = bootstrap_mean("x", s, "bits", 4000, 8);
  EXPECT_EQ(again.ci_low, b.ci_low);
  EXPECT_EQ(again.ci_high, b.ci_high);
  EXPECT_NE(other.ci_low, b.ci_low);
  // a constant sample has a zero-width interval
  const auto c = bootstrap_mean("c", std::vector<double>(50, 1.5), "bits", 100, 0);
  EXPECT_EQ(c.ci_low, 1.5);
  EXPECT_EQ(c.ci_high, 1.5);
  test::expect_error([] { bootstrap_mean("e", {}, "bits", 10, 0); }, {"bootstrap_mean(e)", "no samples"});
}

TEST(ExperimentResult, VerdictRuleCanComeOutEveryWay) {
  const auto null = m(0.0, -0.1, 0.1);
  // effect above the null, CIs apart, gap large enough
  EXPECT_EQ(decide(m(1.0, 0.8, 1.2), null, +1, 0.5), Verdict::kSupported);
  // apart but the gap is under the minimum: not a supported effect, not ruled out either
  EXPECT_EQ(decide(m(0.3, 0.2, 0.4), null, +1, 0.5), Verdict::kInconclusive);
  // on the wrong side
  EXPECT_EQ(decide(m(-1.0, -1.2, -0.8), null, +1, 0.5), Verdict::kNotSupported);
  // the same effect with the opposite prediction
  EXPECT_EQ(decide(m(-1.0, -1.2, -0.8), null, -1, 0.5), Verdict::kSupported);
  // overlapping and both tight: a difference of min_gap is ruled out
  EXPECT_EQ(decide(m(0.05, -0.05, 0.15), null, +1, 0.5), Verdict::kNotSupported);
  // overlapping and wide: cannot tell
  EXPECT_EQ(decide(m(0.5, -1.0, 2.0), null, +1, 0.5), Verdict::kInconclusive);
  EXPECT_EQ(to_string(Verdict::kNotSupported), "not_supported");
  EXPECT_NE(rule_text(+1, 0.5, "delta", "null").find("above"), std::string::npos);
}

TEST(ExperimentResult, JsonCarriesEveryField) {
  Result r;
  r.experiment = "copy-vs-recall";
  r.hypothesis = "h";
  r.model = "data/models/x";
  r.model_fingerprint = "fp";
  r.input = "in.txt";
  r.input_sha256 = "ab";
  r.seed = 9;
  auto e = m(1, 0.5, 1.5);
  e.name = "delta";
  e.unit = "bits_per_byte";
  r.measurements = {e};
  r.null = {m(0, -0.1, 0.1)};
  r.null[0].name = "delta";
  r.verdict = Verdict::kSupported;
  r.verdict_rule = "rule";
  const auto j = r.to_json();
  for (const char* k : {"experiment", "hypothesis", "model", "fingerprint", "input", "input_sha256", "seed",
                        "measurements", "null", "verdict", "verdict_rule"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["verdict"], "supported");
  EXPECT_EQ(j["seed"], 9);
  EXPECT_EQ(j["measurements"]["delta"]["name"], "delta");
  EXPECT_EQ(j["measurements"]["delta"]["ci_high"], 1.5);
  EXPECT_EQ(j["measurements"]["delta"]["unit"], "bits_per_byte");
  EXPECT_EQ(j["null"]["delta"]["ci_low"], -0.1);
  r.measurements.push_back(e);  // a name given twice is an error, not a silent overwrite
  EXPECT_THROW(r.to_json(), Error);
}

}  // namespace
}  // namespace ccc::experiments
