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

// A dump of one stream of n rows after BOS whose mlp.hook_post has the given columns (column-major input:
// cols[u][row], row 0 = BOS) and a text of n bytes.
std::string columns_dump(test::TempDir& dir, const std::string& text, const std::vector<std::vector<float>>& cols) {
  const int64_t rows = static_cast<int64_t>(text.size()) + 1, U = static_cast<int64_t>(cols.size());
  std::vector<int32_t> tokens(rows, 256), stream(rows, 0);
  std::vector<int64_t> pos(rows), off(rows);
  std::vector<float> bits(rows, 1.f), acts(rows * U);
  for (int64_t r = 0; r < rows; ++r) {
    pos[r] = r;
    off[r] = r - 1;
    if (r > 0) tokens[r] = static_cast<unsigned char>(text[r - 1]);
    for (int64_t u = 0; u < U; ++u) acts[r * U + u] = cols[u][r];
  }
  write_file_atomic(dir.file("t.txt"), text);
  const std::string path = dir.file("cols.h5");
  analysis::H5Rows f(path, true, analysis::Compression::kNone);
  f.create("tokens", analysis::Dtype::kI32, {}, rows);
  f.create("stream", analysis::Dtype::kI32, {}, rows);
  f.create("pos", analysis::Dtype::kI64, {}, rows);
  f.create("byte_offset", analysis::Dtype::kI64, {}, rows);
  f.create("bits", analysis::Dtype::kF32, {}, rows);
  f.create("acts/blocks.0.mlp.hook_post", analysis::Dtype::kF32, {U}, rows);
  f.write("tokens", 0, rows, tokens.data());
  f.write("stream", 0, rows, stream.data());
  f.write("pos", 0, rows, pos.data());
  f.write("byte_offset", 0, rows, off.data());
  f.write("bits", 0, rows, bits.data());
  f.write("acts/blocks.0.mlp.hook_post", 0, rows, acts.data());
  f.attr("source", dir.file("t.txt"));
  f.attr("fingerprint", std::string("test"));
  f.commit();
  return path;
}

// Unit classes a researcher can take at face value: each domain its own concept (a unit answering to code
// is not covered by prose), selectivity for two concepts that do not explain the top rows is
// "unexplained", a unit silent on a feature is reported as downward-selective, and a handful of positive
// rows gives no class.
TEST(Units, DomainsAreSeparateConceptsAndClassesNeedCoverageAndASample) {
  test::TempDir dir;
  const int64_t n = 4000;
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.f, 0.05f);
  std::string text;
  const std::string alphabet = "abcdefghijklmnoprstuvw XY01q";
  for (int64_t i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
  std::vector<std::vector<float>> cols(3, std::vector<float>(static_cast<size_t>(n + 1), 0.f));
  std::vector<Feature> features = {{"domain:code", {}}, {"domain:prose", {}}, {"space", {}}, {"digit", {}}, {"upper", {}}};
  for (auto& f : features) f.on.assign(static_cast<size_t>(n + 1), 0);
  for (int64_t r = 1; r <= n; ++r) {
    const char c = text[r - 1];
    const bool code = r <= n / 2;
    features[0].on[r] = code;
    features[1].on[r] = !code;
    features[2].on[r] = c == ' ';
    features[3].on[r] = c >= '0' && c <= '9';
    features[4].on[r] = c >= 'A' && c <= 'Z';
    cols[0][r] = (code ? 2.f : 0.f) + noise(rng);                               // domain:code only
    cols[1][r] = (c == ' ' ? -2.f : 0.f) + noise(rng);                          // silent on spaces
    cols[2][r] = (c == 'q' ? 5.f : features[3].on[r] || features[4].on[r] ? 1.f : 0.f) + noise(rng);  // top rows: 'q'
  }
  ActivationStore store(columns_dump(dir, text, cols));
  UnitOptions o;
  o.top_k = 50;
  o.threads = 1;
  const auto rep = analyze_units(store, features, o);
  ASSERT_EQ(rep.units.size(), 3u);
  EXPECT_NE(rep.concept_of[0], rep.concept_of[1]) << "domain:code and domain:prose are one concept";
  const auto& code = rep.units[0];
  EXPECT_EQ(code.cls, "monosemantic");
  EXPECT_EQ(rep.features[code.top_feature], "domain:code");
  EXPECT_GE(code.coverage[rep.concept_of[0]], 0.99);
  EXPECT_EQ(code.coverage[rep.concept_of[1]], 0.f) << "a code unit is not covered by prose";
  const auto& down = rep.units[1];
  ASSERT_GE(down.down_feature, 0);
  EXPECT_EQ(rep.features[down.down_feature], "space");
  EXPECT_LT(down.auroc[down.down_feature], 0.05);
  const auto& q = rep.units[2];
  EXPECT_GT(q.auroc[3], 0.8);  // digits and upper case are both selective ...
  EXPECT_GT(q.auroc[4], 0.8);
  EXPECT_EQ(q.cls, "unexplained") << "... but the top rows are the letter q";
  // 18 rows: a unit that follows a feature with 3 positive rows gets no class from them
  test::TempDir small;
  const std::string tiny_text = "ab1cd2ef3ghijklmno";
  std::vector<std::vector<float>> tiny(1, std::vector<float>(tiny_text.size() + 1, 0.f));
  std::vector<Feature> tf = {{"digit", std::vector<uint8_t>(tiny_text.size() + 1, 0)}};
  for (size_t r = 1; r <= tiny_text.size(); ++r) {
    tf[0].on[r] = std::isdigit(static_cast<unsigned char>(tiny_text[r - 1])) != 0;
    tiny[0][r] = tf[0].on[r] ? 1.f : 0.01f * static_cast<float>(r);
  }
  ActivationStore tiny_store(columns_dump(small, tiny_text, tiny));
  const auto tiny_rep = analyze_units(tiny_store, tf, o);
  EXPECT_EQ(tiny_rep.units[0].auroc[0], 1.f);  // reported ...
  EXPECT_EQ(tiny_rep.units[0].cls, "unexplained") << "... but 3 positive rows are not a sample";
  UnitOptions lax = o;
  lax.min_positives = 3;
  lax.top_k = 3;  // the top rows are the three digits
  EXPECT_EQ(analyze_units(tiny_store, tf, lax).units[0].cls, "monosemantic");
  // derived units (a dictionary's features): the identity gives each column's analysis again, under its name
  UnitOptions d = o;
  d.derived.push_back({"mlp:identity", store.hooks()[0], 3, [](const RowMatrix& rows) { return rows; }});
  const auto both = analyze_units(store, features, d);
  ASSERT_EQ(both.units.size(), 6u);
  for (size_t u = 0; u < 3; ++u) {
    const auto &a = both.units[u], &b = both.units[u + 3];
    EXPECT_EQ(b.hook, "mlp:identity");
    EXPECT_EQ(b.unit, a.unit);
    EXPECT_EQ(b.cls, a.cls) << u;
    EXPECT_EQ(b.null_cls, a.null_cls) << u;
    EXPECT_EQ(b.null_top_coverage, a.null_top_coverage) << u;
    for (size_t f = 0; f < features.size(); ++f)
      if (!std::isnan(a.auroc[f])) EXPECT_EQ(b.auroc[f], a.auroc[f]) << u << " " << f;
  }
}

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
