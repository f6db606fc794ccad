#include "analysis/units.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/capture.h"
#include "analysis/h5_rows.h"
#include "model/formats/loader.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/planted_units.h"
#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

using test::Planted;
using test::plant;
using test::read_units_csv;
using test::words_text;

TEST(Units, FastAurocMatchesTheDefinitionWithTies) {
  Planted p;
  plant(p, 1500);
  ActivationStore st(p.dump_path);
  const auto offsets = st.byte_offsets();
  std::vector<int64_t> starts(offsets.size(), 0);
  auto feats = auto_features(p.text, offsets, starts, 64);
  UnitOptions o;
  o.hooks = {"blocks.0.mlp.hook_post"};
  o.memory_bytes = 3 * 1500 * 4;  // forces several column chunks
  const auto rep = analyze_units(st, feats, o);
  ASSERT_EQ(rep.units.size(), 5u);
  double max_diff = 0;
  for (int u = 0; u < 5; ++u) {
    std::vector<float> v;
    for (int64_t r = 1; r < p.rows; ++r) v.push_back(p.mlp[r * 5 + u]);
    for (size_t f = 0; f < feats.size(); ++f) {
      std::vector<uint8_t> on(feats[f].on.begin() + 1, feats[f].on.end());
      const double ref = auroc(v, on);
      const double got = rep.units[u].auroc[f];
      if (std::isnan(ref)) {
        EXPECT_TRUE(std::isnan(got)) << feats[f].name;
        continue;
      }
      max_diff = std::max(max_diff, std::abs(ref - got));
    }
  }
  EXPECT_LT(max_diff, 1e-5) << "max |AUROC fast − definition| = " << max_diff;
  EXPECT_EQ(rep.rows, p.rows - 1);  // BOS left out
}

}  // namespace
}  // namespace ccc::analysis

namespace ccc::analysis {
namespace {

}  // namespace
}  // namespace ccc::analysis
