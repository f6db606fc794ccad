// Command functions called in process (experiments/commands): what they write and compute.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "analysis/capture.h"
#include "analysis/h5_rows.h"
#include "analysis/units.h"
#include "circuits/ablation.h"
#include "circuits/attribution.h"
#include "circuits/patching.h"
#include "circuits/sweep.h"
#include "compress/container.h"
#include "compress/lm_codec.h"
#include "experiments/commands/ablate_cmd.h"
#include "experiments/commands/compress_cmd.h"
#include "experiments/commands/units_cmd.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/bits.h"
#include "model/formats/loader.h"
#include "tests/support/planted_units.h"
#include "tests/support/test_support.h"

namespace ccc::circuits {
namespace {

// ccc compress --ablate: the payload grows by the ablation's Δbits (the literal change in compressed
// size), the container decodes only with the same edit, and bit-exactly with it.
// Quiet compress options of the shipped organism ccc-attn2 on `text`, written to DIR/in.txt.
experiments::CompressCmdOptions organism_compress(const test::TempDir& dir, const std::string& text) {
  write_file_atomic(dir.file("in.txt"), text);
  experiments::CompressCmdOptions o;
  o.model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2";
  o.in = dir.file("in.txt");
  o.quiet = true;
  return o;
}

TEST(Ablation, CompressWithAnAblationCostsItsDeltaBitsAndNeedsTheSameEdit) {
  test::TempDir dir;
  const std::string text = test::repeated_strings(20, 40, 2, true);
  auto o = organism_compress(dir, text);
  o.out = dir.file("clean.ccc");
  o.pure = true;  // the clean measurement (an ablated container is always model-only)
  experiments::run_compress(o);
  o.pure = false;
  o.ablate = "1.2,0.1";
  o.out = dir.file("abl.ccc");
  experiments::run_compress(o);
  auto payload_bits = [&](const std::string& path) {
    const std::string c = read_file(path);
    size_t off = 0;
    const auto h = compress::parse_container(c, path, &off);
    uint64_t bytes = 0;
    for (uint64_t g : h.group_bytes) bytes += g;
    return 8.0 * static_cast<double>(bytes);
  };
  auto m = model::load_model(o.model);
  circuits::ScoringRun run;  // the compressor's defaults
  const auto clean = circuits::ablated_bits(m, text, run, {}, nullptr);
  const auto abl = circuits::ablated_bits(m, text, run, parse_components(o.ablate, m.config), nullptr);
  const auto d = circuits::delta_stats(clean, abl, static_cast<int64_t>(text.size()), 10, 0);
  const double measured = payload_bits(dir.file("abl.ccc")) - payload_bits(dir.file("clean.ccc"));
  ASSERT_GT(d.delta_bits, 500);
  // each group's arithmetic code ends with a few bytes of flush
  EXPECT_NEAR(measured, d.delta_bits, 0.005 * d.delta_bits + 64) << "payload Δ " << measured << " vs delta_bits " << d.delta_bits;
  // decoding: the plain model and another edit are refused; the same edit restores the input
  experiments::CompressCmdOptions dec;
  dec.model = o.model;
  dec.in = dir.file("abl.ccc");
  dec.out = dir.file("back.txt");
  dec.quiet = true;
  EXPECT_THROW(experiments::run_decompress(dec), Error);
  dec.ablate = "1.2";
  EXPECT_THROW(experiments::run_decompress(dec), Error);
  dec.ablate = "1.2,0.1";
  experiments::run_decompress(dec);
  EXPECT_EQ(read_file(dir.file("back.txt")), text);
  // mean / resample need an explicit reference (the decoder has no input to take it from)
  o.ablate_mode = "mean";
  o.out = dir.file("mean.ccc");
  EXPECT_THROW(experiments::run_compress(o), Error);
}

// compress --ablate with --dump: the dump is of the ablated model — its Σ bits is the ablated run's, the
// ablated head's hook_z rows are zero (edits run before the capture's observers), its fingerprint is the
// edit's — and the container is the same as without --dump.
TEST(Ablation, DumpsOfAnAblatedModelRecordTheEditedRun) {
  test::TempDir dir;
  const std::string text = test::repeated_strings(12, 30, 4, true);
  auto o = organism_compress(dir, text);
  o.ablate = "1.2";
  o.out = dir.file("plain.ccc");
  experiments::run_compress(o);
  o.out = dir.file("abl.ccc");
  o.dump = dir.file("d.h5");
  o.hooks = {"blocks.1.attn.hook_z"};
  o.dump_dtype = "f32";
  experiments::run_compress(o);
  EXPECT_EQ(read_file(dir.file("abl.ccc")), read_file(dir.file("plain.ccc")));
  analysis::ActivationStore store(dir.file("d.h5"));
  auto m = model::load_model(o.model);
  circuits::ScoringRun run;
  const auto abl = circuits::ablated_bits(m, text, run, parse_components("1.2", m.config), nullptr);
  double dumped = 0;
  for (float b : store.bits())
    if (!std::isnan(b)) dumped += b;
  EXPECT_NEAR(dumped, total_bits(abl), 1e-4 * total_bits(abl)) << "the dump's bits are the ablated model's";
  EXPECT_NE(store.attr("fingerprint"), m.fingerprint);
  const auto z = store.block("blocks.1.attn.hook_z", 0, store.rows());  // [rows, n_heads * d_head]
  const int64_t dh = m.config.d_head;
  double head2 = 0, head1 = 0;
  for (int64_t r = 0; r < z.rows(); ++r)
    for (int64_t e = 0; e < dh; ++e) {
      head2 = std::max(head2, std::abs(static_cast<double>(z(r, 2 * dh + e))));
      head1 = std::max(head1, std::abs(static_cast<double>(z(r, 1 * dh + e))));
    }
  EXPECT_EQ(head2, 0.0) << "the ablated head is recorded as edited";
  EXPECT_GT(head1, 0.01);
}

}  // namespace
}  // namespace ccc::circuits

namespace ccc::analysis {
namespace {

TEST(Units, PlantedUnitsGetTheirClassesAndTheNullFindsNone) {
  test::Planted p;
  test::plant(p, 4000);
  experiments::UnitsCmdOptions o;
  o.dump = p.dump_path;
  o.out_dir = p.dir.file("units");
  o.quiet = true;
  experiments::run_units(o);
  auto csv = test::read_units_csv(o.out_dir + "/units.csv");
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
  test::expect_error([&] { experiments::run_units(o); }, {labels + ":3:"});
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
  test::Planted p;
  test::plant(p, 3000);
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
  auto csv = test::read_units_csv(o.out_dir + "/units.csv");
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

// --ablate-top: the Δbits it reports for a unit equal a mean ablation of that component run directly.
TEST(Units, AblateTopReportsTheMeanAblationOfEachUnit) {
  test::TempDir dir;
  {
    auto tiny = test::tiny_byte_lm(8, 64);
    model::save_model(dir.file("m"), tiny.config, tiny.model, model::SaveDtype::kF32);
  }
  auto m = model::load_model(dir.file("m"));
  const std::string text = test::words_text(600, 5);
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
    cap.attach(codec, codec);
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
  circuits::ScoringRun run;
  run.mode = circuits::Mode::kMean;
  run.streams = 2;
  run.window = 32;
  const auto clean = circuits::ablated_bits(m, text, run, {}, nullptr);
  for (const auto& a : summary["ablated"]) {
    const std::string hook = a["hook"];
    const int64_t layer = hook[7] - '0', unit = a["unit"];
    const auto kind = hook.find("hook_z") != std::string::npos ? circuits::Component::Kind::kHead
                                                               : circuits::Component::Kind::kNeuron;
    const std::vector<circuits::Component> comp = {{kind, layer, unit}};
    const auto ref = circuits::collect_reference(m, text, comp, circuits::Mode::kMean, 2, 32, 0);
    const auto abl = circuits::ablated_bits(m, text, run, comp, &ref);
    double delta = 0;
    for (size_t i = 0; i < abl.size(); ++i) delta += abl[i] - clean[i];
    EXPECT_NEAR(a["delta_bits"].get<double>(), delta, 1e-3) << hook << " " << unit;
  }
  // with a position mask: the same ablations summed over the selected bytes (byte model: token k = byte k)
  o.force = true;
  o.ablate_positions.regexes = {"[aeiou]"};
  experiments::run_units(o);
  const auto masked = nlohmann::json::parse(read_file(o.out_dir + "/summary.json"));
  EXPECT_EQ(masked["ablated_positions"], "regex [aeiou]");
  ASSERT_EQ(masked["ablated"].size(), 3u);
  for (const auto& a : masked["ablated"]) {
    const std::string hook = a["hook"];
    const int64_t layer = hook[7] - '0', unit = a["unit"];
    const auto kind = hook.find("hook_z") != std::string::npos ? circuits::Component::Kind::kHead
                                                               : circuits::Component::Kind::kNeuron;
    const std::vector<circuits::Component> comp = {{kind, layer, unit}};
    const auto ref = circuits::collect_reference(m, text, comp, circuits::Mode::kMean, 2, 32, 0);
    const auto abl = circuits::ablated_bits(m, text, run, comp, &ref);
    ASSERT_EQ(abl.size(), text.size());
    double delta = 0, bytes = 0;
    for (size_t i = 0; i < abl.size(); ++i)
      if (std::string("aeiou").find(text[i]) != std::string::npos) delta += abl[i] - clean[i], bytes += 1;
    EXPECT_NEAR(a["delta_bits"].get<double>(), delta, 1e-3) << hook << " " << unit;
    EXPECT_NEAR(a["delta_bits_per_byte"].get<double>(), delta / bytes, 1e-5) << hook << " " << unit;
  }
  o.ablate_positions = {};
  // a model that is not the dump's is refused
  o.force = true;
  o.model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  EXPECT_THROW(experiments::run_units(o), Error);
}

}  // namespace
}  // namespace ccc::analysis

namespace ccc::experiments {
namespace {

TEST(Support, ValidUtf8FollowsTheDefinition) {
  for (const char* ok : {"", "abc", "\xc3\x9cn\xc3\xaf", "\xf0\x9f\xa6\x99", "\xf4\x8f\xbf\xbf", "\xe2\x82\xac"})
    EXPECT_TRUE(valid_utf8(ok)) << ok;
  for (const char* bad : {"\xff\xfe", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\x80",
                          "\xf8\x88\x80\x80\x80"})
    EXPECT_FALSE(valid_utf8(bad)) << escape_bytes(bad);
}

// units.csv quotes every name per RFC 4180 (issue 28, item 10): Python's csv module reads every row with
// the header's number of fields; a feature name that is not UTF-8 is refused before anything is written
// (item 9).
TEST(Units, CsvQuotesNamesAndNonUtf8NamesAreRefusedUpFront) {
  test::Planted p;
  test::plant(p, 2000);
  UnitsCmdOptions o;
  o.dump = p.dump_path;
  o.out_dir = p.dir.file("units");
  o.quiet = true;
  o.features = {"a,b=the", "q\"uote=[0-9]"};
  run_units(o);
  const std::string csv = o.out_dir + "/units.csv";
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 -c 'import csv,sys\n"
                              "rows=list(csv.reader(open(sys.argv[1], newline=\"\")))\n"
                              "assert len(rows) > 2, len(rows)\n"
                              "bad=[i for i,r in enumerate(rows) if len(r)!=len(rows[0])]\n"
                              "assert not bad, bad[:5]\n"
                              "assert \"auroc:a,b\" in rows[0] and \"auroc:q\\\"uote\" in rows[0], rows[0]\n"
                              "print(len(rows))' " + csv + " 2>&1", &out), 0) << out;
  UnitsCmdOptions bad = o;
  bad.out_dir = p.dir.file("units-bad");
  bad.features = {"\xff\xfe=a"};
  test::expect_error([&] { run_units(bad); }, {"not valid UTF-8", "\\xff\\xfe"});
  EXPECT_FALSE(std::filesystem::exists(bad.out_dir));
}

// A labels CSV is parsed strictly (decimal integers only) and bounded: its 65th distinct feature name is
// refused before its label array is allocated; /dev/zero is refused at the text cap.
TEST(Units, LabelsCsvIsStrictAndBounded) {
  test::TempDir tmp;
  const std::vector<int64_t> offsets = {0, 1, 2, 3, 4, 5, 6, 7};
  write_file_atomic(tmp.file("ok.csv"), "feature,start,end\nx,2,4\n x , 6 , 8 \n");
  const auto ok = read_labels_csv(tmp.file("ok.csv"), offsets);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].on, (std::vector<uint8_t>{0, 0, 1, 1, 0, 0, 1, 1}));
  for (const std::string bad : {"1.5", "0x10", "1e3", "5abc", "+3", "99999999999999999999"}) {
    write_file_atomic(tmp.file("bad.csv"), "feature,start,end\nx,0," + bad + "\n");
    test::expect_error([&] { read_labels_csv(tmp.file("bad.csv"), offsets); },
                       {tmp.file("bad.csv") + ":2", "decimal integers", bad});
  }
  std::string many = "feature,start,end\n";
  for (int i = 0; i < 65; ++i) many += "f" + std::to_string(i) + ",0,1\n";
  write_file_atomic(tmp.file("many.csv"), many);
  test::expect_error([&] { read_labels_csv(tmp.file("many.csv"), offsets); },
                     {tmp.file("many.csv") + ":66", "more than 64 distinct feature names"});
  test::expect_error([&] { read_labels_csv("/dev/zero", offsets); }, {"/dev/zero", "more than the 256.0 MiB"});
}

}  // namespace
}  // namespace ccc::experiments
