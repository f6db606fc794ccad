#include "experiments/lib/competition.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "circuits/icl.h"
#include "model/base/error.h"
#include "model/formats/loader.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

// dominance = max⁺ / Σ⁺ per token, NaN (winner −1) without a positive cost; one candidate dominates fully.
TEST(Competition, DominanceAndMutualInformationFollowTheirDefinitions) {
  std::vector<int> win;
  const auto d = dominance_of({{3, 1, -2}, {0, 0, 0}, {-1, -1, 0}, {1, 1, 2}}, &win);
  EXPECT_DOUBLE_EQ(d[0], 0.75);
  EXPECT_TRUE(std::isnan(d[1]));
  EXPECT_TRUE(std::isnan(d[2]));
  EXPECT_DOUBLE_EQ(d[3], 0.5);
  EXPECT_EQ(win, (std::vector<int>{0, -1, -1, 2}));
  const auto single = dominance_of({{0.3}, {2.0}, {-1.0}});
  EXPECT_DOUBLE_EQ(single[0], 1.0);
  EXPECT_DOUBLE_EQ(single[1], 1.0);
  EXPECT_TRUE(std::isnan(single[2]));
  // MI: a copy of a fair binary variable carries 1 bit, an independent one 0; entries < 0 of a are left out
  EXPECT_NEAR(mutual_information_bits({0, 1, 0, 1}, {0, 1, 0, 1}), 1.0, 1e-12);
  EXPECT_NEAR(mutual_information_bits({0, 0, 1, 1}, {0, 1, 0, 1}), 0.0, 1e-12);
  EXPECT_NEAR(mutual_information_bits({0, 1, -1, -1}, {0, 1, 0, 0}), 1.0, 1e-12);
  EXPECT_THROW(mutual_information_bits({0}, {0, 1}), Error);
}

// On the shipped organism over make-probe's repeated strings, the bytes of the second copies are won by
// the induction circuit's heads (previous-token 0.1 / 0.2, induction 1.2 / 1.3), the result carries every
// measurement with its null under the same name, and the same seed gives the same result.
TEST(Competition, OnTheOrganismTheInductionCircuitWinsTheRepeatedBytes) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const std::string text = circuits::make_probe(40, 16, 2).repeated;
  CompetitionOptions o;
  o.null_draws = 5;
  o.pair_top = 2;
  o.resamples = 200;
  CompetitionDetail d;
  const Result r = run_competition(m, text, o, &d);
  std::set<std::string> names, null_names;
  for (const auto& x : r.measurements) names.insert(x.name);
  for (const auto& x : r.null) null_names.insert(x.name);
  EXPECT_EQ(names, null_names);
  for (const char* key : {"dominance_mean", "clear_winner_share", "winner_feature_mi_bits", "redundant_pair_share",
                          "interfering_pair_share"})
    EXPECT_TRUE(names.count(key)) << key;
  for (const auto& x : r.measurements) {
    EXPECT_LE(x.ci_low, x.value + 1e-12) << x.name;
    EXPECT_GE(x.ci_high, x.value - 1e-12) << x.name;
  }
  ASSERT_EQ(d.winner.size(), text.size());
  int64_t repeated = 0, circuit = 0;
  for (size_t t = 0; t < d.winner.size(); ++t) {
    if (d.token_class[t] != "repeated" || d.winner[t] < 0) continue;
    ++repeated;
    const auto& w = d.candidates[static_cast<size_t>(d.winner[t])];
    circuit += w == "0.1" || w == "0.2" || w == "1.2" || w == "1.3";
  }
  ASSERT_GT(repeated, 400);
  EXPECT_GT(static_cast<double>(circuit) / static_cast<double>(repeated), 0.9) << circuit << " of " << repeated;
  EXPECT_EQ(r.to_json(), run_competition(m, text, o).to_json()) << "the same seed must give the same result";
  o.seed = 7;
  EXPECT_NE(r.to_json()["null"], run_competition(m, text, o).to_json()["null"]);
}

}  // namespace
}  // namespace ccc::experiments
