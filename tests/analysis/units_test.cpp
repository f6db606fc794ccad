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
#include "experiments/ablate_cmd.h"
#include "model/formats/loader.h"
#include "experiments/units_cmd.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

std::string words_text(size_t n, uint32_t seed) {
  std::string t;
  std::mt19937 rng(seed);
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat", ". ", "\n", "Dog ", "(quoted) ", "42 ", "It "};
  while (t.size() < n) t += words[rng() % 12];
  t.resize(n);
  return t;
}

// A dump of `text` as one byte-level stream (row 0 = BOS) with planted units:
//   mlp unit 0: fires on spaces (monosemantic), unit 1: on digits and on newlines (polysemantic),
//   unit 2: never above 0 (dead), unit 3: noise with ties (unexplained), unit 4: on upper-case letters;
//   hook_z head 0: large norm on newlines, head 1: noise.
struct Planted {
  test::TempDir dir;
  std::string text, text_path, dump_path;
  std::vector<float> mlp;  // [rows, 5]
  int64_t rows = 0;
};

void plant(Planted& p, size_t n) {
  p.text = words_text(n, 11);
  p.text_path = p.dir.file("text.txt");
  p.dump_path = p.dir.file("d.h5");
  write_file_atomic(p.text_path, p.text);
  p.rows = static_cast<int64_t>(n) + 1;
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 1.f);
  std::vector<int32_t> tokens(p.rows), stream(p.rows, 0);
  std::vector<int64_t> pos(p.rows), off(p.rows);
  std::vector<float> bits(p.rows), z(p.rows * 2 * 3);
  p.mlp.assign(p.rows * 5, 0.f);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t o = r - 1;
    const unsigned char c = o >= 0 ? static_cast<unsigned char>(p.text[o]) : 0;
    tokens[r] = o >= 0 ? c : 256;
    pos[r] = r;
    off[r] = o;
    bits[r] = o >= 0 ? 1.0f + 0.001f * static_cast<float>(r % 7) : NAN;
    float* m = &p.mlp[r * 5];
    m[0] = (c == ' ' ? 2.0f : 0.0f) + 0.05f * noise(rng);
    m[1] = ((c >= '0' && c <= '9') || c == '\n' ? 1.5f : 0.0f) + 0.05f * noise(rng);
    m[2] = -0.1f;
    m[3] = std::round(4 * noise(rng)) / 4;  // ties
    m[4] = (c >= 'A' && c <= 'Z' ? 1.0f : -0.05f) + 0.02f * noise(rng);
    float* h = &z[r * 6];
    for (int e = 0; e < 3; ++e) h[e] = (c == '\n' ? 3.0f : 0.1f) + 0.01f * noise(rng);
    for (int e = 3; e < 6; ++e) h[e] = noise(rng);
  }
  H5Rows f(p.dump_path, false, Compression::kNone);
  f.create("tokens", Dtype::kI32, {}, p.rows);
  f.create("stream", Dtype::kI32, {}, p.rows);
  f.create("pos", Dtype::kI64, {}, p.rows);
  f.create("byte_offset", Dtype::kI64, {}, p.rows);
  f.create("bits", Dtype::kF32, {}, p.rows);
  f.create("acts/blocks.0.mlp.hook_post", Dtype::kF32, {5}, p.rows);
  f.create("acts/blocks.0.attn.hook_z", Dtype::kF32, {2, 3}, p.rows);
  f.write("tokens", 0, p.rows, tokens.data());
  f.write("stream", 0, p.rows, stream.data());
  f.write("pos", 0, p.rows, pos.data());
  f.write("byte_offset", 0, p.rows, off.data());
  f.write("bits", 0, p.rows, bits.data());
  f.write("acts/blocks.0.mlp.hook_post", 0, p.rows, p.mlp.data());
  f.write("acts/blocks.0.attn.hook_z", 0, p.rows, z.data());
  f.attr("source", p.text_path);
  f.attr("source_sha256", sha256_hex(p.text));
  f.attr("window", int64_t{64});
  f.attr("fingerprint", std::string("test"));
  f.commit();
}

std::map<std::string, std::map<std::string, std::string>> read_units_csv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> cols;
  {
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
  }
  std::map<std::string, std::map<std::string, std::string>> out;  // "hook/unit" -> column -> value
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::map<std::string, std::string> row;
    size_t i = 0;
    for (std::string c; std::getline(ss, c, ',') && i < cols.size(); ++i) row[cols[i]] = c;
    out[row["hook"] + "/" + row["unit"]] = row;
  }
  return out;
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

TEST(Units, PlantedUnitsGetTheirClassesAndTheNullFindsNone) {
  Planted p;
  plant(p, 4000);
  experiments::UnitsCmdOptions o;
  o.dump = p.dump_path;
  o.out_dir = p.dir.file("units");
  o.quiet = true;
  experiments::run_units(o);
  auto csv = read_units_csv(o.out_dir + "/units.csv");
  const std::string mlp = "blocks.0.mlp.hook_post/", z = "blocks.0.attn.hook_z/";
  EXPECT_EQ(csv[mlp + "0"]["class"], "monosemantic");
  EXPECT_EQ(csv[mlp + "0"]["top_feature"], "space");
  EXPECT_EQ(csv[mlp + "1"]["class"], "polysemantic");
  EXPECT_EQ(csv[mlp + "2"]["class"], "dead");
  EXPECT_EQ(csv[mlp + "3"]["class"], "unexplained");
  EXPECT_EQ(csv[mlp + "4"]["class"], "monosemantic");
  EXPECT_EQ(csv[mlp + "4"]["top_feature"], "upper");
  EXPECT_EQ(csv[z + "0"]["class"], "monosemantic");
  EXPECT_EQ(csv[z + "0"]["top_feature"], "newline");
  EXPECT_EQ(csv[z + "1"]["class"], "unexplained");
  EXPECT_NEAR(std::stod(csv[mlp + "2"]["frac_active"]), 0.0, 1e-12);
  const auto summary = nlohmann::json::parse(read_file(o.out_dir + "/summary.json"));
  EXPECT_EQ(summary["counts"]["monosemantic"].get<int>(), 3);
  EXPECT_EQ(summary["null_counts"]["monosemantic"].get<int>(), 0);
  const std::string report = read_file(o.out_dir + "/report.md");
  EXPECT_NE(report.find("### blocks.0.mlp.hook_post unit 0"), std::string::npos);
  EXPECT_NE(report.find("⟦ ⟧"), std::string::npos);  // a space unit's top context marks a space
  // refuses to overwrite without --force; a labels file with a bad line is named with its line
  EXPECT_THROW(experiments::run_units(o), Error);
  o.force = true;
  const std::string labels = p.dir.file("l.csv");
  write_file_atomic(labels, "feature,start,end\nfirst_half,0,2000\nbroken,12\n");
  o.labels = {labels};
  try {
    experiments::run_units(o);
    ADD_FAILURE() << "a bad labels line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(labels + ":3:"), std::string::npos) << e.what();
  }
  // a source that is not the dumped text
  o.labels.clear();
  o.source = p.dir.file("other.txt");
  write_file_atomic(o.source, p.text + "x");
  EXPECT_THROW(experiments::run_units(o), Error);
}

// An independent implementation (numpy ranks with ties averaged) gives the same AUROCs from the HDF5 file.
TEST(Units, AurocsMatchAPythonImplementation) {
  if (test::run_command("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py (Debian python3-h5py) is not installed";
  Planted p;
  plant(p, 3000);
  experiments::UnitsCmdOptions o;
  o.dump = p.dump_path;
  o.out_dir = p.dir.file("units");
  o.quiet = true;
  o.features = {"vowel=[aeiou]"};
  experiments::run_units(o);
  const std::string script = p.dir.file("auroc.py");
  write_file_atomic(script, R"PY(
import sys, re, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); text = open(sys.argv[2], "rb").read()
off = f["byte_offset"][...]; keep = off >= 0; off = off[keep]
b = np.frombuffer(text, dtype=np.uint8)[off]
labels = {"space": (b == 32) | (b == 9), "digit": (b >= 48) & (b <= 57), "newline": (b == 10) | (b == 13),
          "upper": (b >= 65) & (b <= 90), "vowel": np.isin(b, np.frombuffer(b"aeiou", dtype=np.uint8))}
def auroc(x, y):
    order = np.argsort(x, kind="mergesort"); xs = x[order]
    ranks = np.empty(len(x)); i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]: j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1; i = j + 1
    n1 = y.sum(); n0 = len(y) - n1
    return (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
acts = f["acts"]["blocks.0.mlp.hook_post"][...][keep].astype(np.float64)
z = f["acts"]["blocks.0.attn.hook_z"][...][keep].astype(np.float64)
znorm = np.sqrt((z ** 2).sum(axis=2))
for u in range(acts.shape[1]):
    for name, y in labels.items(): print("blocks.0.mlp.hook_post", u, name, "%.6f" % auroc(acts[:, u], y))
for h in range(2):
    for name, y in labels.items(): print("blocks.0.attn.hook_z", h, name, "%.6f" % auroc(znorm[:, h], y))
)PY");
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + p.dump_path + " " + p.text_path, &out), 0) << out;
  auto csv = read_units_csv(o.out_dir + "/units.csv");
  std::istringstream in(out);
  std::string hook, feat;
  int unit = 0;
  double ref = 0, max_diff = 0;
  int compared = 0;
  while (in >> hook >> unit >> feat >> ref) {
    const double got = std::stod(csv[hook + "/" + std::to_string(unit)]["auroc:" + feat]);
    max_diff = std::max(max_diff, std::abs(got - ref));
    ++compared;
  }
  EXPECT_EQ(compared, 7 * 5);
  EXPECT_LT(max_diff, 2e-4) << "max |AUROC ccc − numpy| = " << max_diff << "\n" << out;  // csv has 4 decimals
}

}  // namespace
}  // namespace ccc::analysis

namespace ccc::analysis {
namespace {

// --ablate-top: the Δbits it reports for a unit equal a mean ablation of that component run directly.
TEST(Units, AblateTopReportsTheMeanAblationOfEachUnit) {
  test::TempDir dir;
  {
    auto tiny = test::tiny_byte_lm(8, 64);
    model::save_model(dir.file("m"), tiny.config, tiny.model, model::SaveDtype::kF32);
  }
  auto m = model::load_model(dir.file("m"));
  const std::string text = words_text(600, 5);
  write_file_atomic(dir.file("t.txt"), text);
  compress::CodecOptions codec;
  codec.streams = 2;
  codec.window = 32;
  {
    CaptureOptions c;
    c.out = dir.file("d.h5");
    c.hooks = {"blocks.*.mlp.hook_post", "blocks.1.attn.hook_z"};
    c.source = dir.file("t.txt");
    ActivationCapture cap(m, text, codec, c);
    cap.attach(codec);
    compress::lm_compress(m, text, codec);
    cap.finish();
  }
  experiments::UnitsCmdOptions o;
  o.dump = dir.file("d.h5");
  o.out_dir = dir.file("u");
  o.quiet = true;
  o.ablate_top = 3;
  o.model = dir.file("m");
  experiments::run_units(o);
  const auto summary = nlohmann::json::parse(read_file(o.out_dir + "/summary.json"));
  ASSERT_EQ(summary["ablated"].size(), 3u);
  experiments::AblationRun run;
  run.mode = "mean";
  run.streams = 2;
  run.window = 32;
  const auto clean = experiments::ablated_bits(m, text, run, {}, nullptr);
  for (const auto& a : summary["ablated"]) {
    const std::string hook = a["hook"];
    const int64_t layer = hook[7] - '0', unit = a["unit"];
    const auto kind = hook.find("hook_z") != std::string::npos ? circuits::Component::Kind::kHead
                                                               : circuits::Component::Kind::kNeuron;
    const std::vector<circuits::Component> comp = {{kind, layer, unit}};
    const auto ref = circuits::collect_reference(m, text, comp, circuits::Mode::kMean, 2, 32, 0);
    const auto abl = experiments::ablated_bits(m, text, run, comp, &ref);
    double delta = 0;
    for (size_t i = 0; i < abl.size(); ++i) delta += abl[i] - clean[i];
    EXPECT_NEAR(a["delta_bits"].get<double>(), delta, 1e-3) << hook << " " << unit;
  }
  // a model that is not the dump's is refused
  o.force = true;
  o.model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  EXPECT_THROW(experiments::run_units(o), Error);
}

}  // namespace
}  // namespace ccc::analysis
