#include "circuits/paired.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "circuits/head_detectors.h"
#include "circuits/icl.h"
#include "model/scoring/streams.h"
#include "tests/support/test_support.h"

namespace ccc::circuits {
namespace {

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

double sum_over(const std::vector<double>& bits, const std::vector<uint8_t>& on) {
  double s = 0;
  for (size_t i = 0; i < bits.size(); ++i)
    if (on[i]) s += bits[i];
  return s;
}

ScoringRun chunked_run() {  // several streams, a window shorter than a stream: the rolling cache evicts
  ScoringRun r;
  r.streams = 3;
  r.window = 8;
  return r;
}

// Patching every component from an identical corrupt input changes no bit, in either direction, on every
// path (the shared sweep, the stacked sweep with copies folded onto their streams, the input swap).
TEST(PairedPatching, AnIdenticalCorruptInputChangesNothing) {
  auto m = test::tiny_byte_lm(3, 16);
  const std::string text = test::synthetic_text(4, 150);
  std::vector<Component> set = sweep_set("heads", m.config);
  for (const char* over : {"attn", "mlps"})
    for (const auto& c : sweep_set(over, m.config)) set.push_back(c);
  set.push_back(parse_components("n0.3", m.config)[0]);
  const auto b = paired_patch_bits(m, text, text, chunked_run(), set, /*max_rows=*/7);
  ASSERT_EQ(b.noised.size(), set.size());
  EXPECT_LE(max_abs_diff(b.corrupt, b.clean), 1e-9);
  for (size_t i = 0; i < set.size(); ++i) {
    EXPECT_LE(max_abs_diff(b.noised[i], b.clean), 1e-9) << set[i].name();
    EXPECT_LE(max_abs_diff(b.denoised[i], b.clean), 1e-9) << set[i].name();
  }
}

// The corrupt run is the model reading the corrupt text: wherever the two texts agree on the token being
// priced, its bits are those of scoring the corrupt text itself. And noising one component through the
// paired sweep equals ablate --mode corrupt of it alone.
TEST(PairedPatching, TheCorruptRunReadsTheCorruptTextAndNoisingIsModeCorrupt) {
  auto m = test::tiny_byte_lm(5, 16);
  const auto probe = make_probe(9, 12, 4);
  ScoringRun run = chunked_run();
  const auto set = sweep_set("heads", m.config);
  const auto b = paired_patch_bits(m, probe.repeated, probe.corrupt, run, set);
  const auto own = ablated_bits(m, probe.corrupt, run, {}, nullptr);
  ASSERT_EQ(own.size(), b.corrupt.size());
  // byte model: the k-th coded token of the flattened streams is byte k
  size_t agree = 0;
  double worst = 0;
  for (size_t k = 0; k < own.size(); ++k)
    if (probe.repeated[k] == probe.corrupt[k]) ++agree, worst = std::max(worst, std::abs(own[k] - b.corrupt[k]));
  EXPECT_GT(agree, own.size() / 3);
  EXPECT_LE(worst, 1e-6) << "max |corrupt run - the corrupt text's own bits| where the targets agree";
  EXPECT_GT(max_abs_diff(b.corrupt, b.clean), 0.01) << "the swapped input changed nothing";
  ScoringRun corrupt = run;
  corrupt.mode = Mode::kCorrupt;
  const auto rec = record_positions(m, probe.corrupt, run, {set[1]}, false);
  const auto one = ablated_bits(m, probe.repeated, corrupt, {set[1]}, &rec);
  EXPECT_LE(max_abs_diff(one, b.noised[1]), 1e-6) << set[1].name();
}

// On the shipped organism (ccc-attn2: previous-token head 0.2, induction heads 1.2 and 1.3), the probe
// whose first copies are replaced: restoring the strongest induction head alone recovers most of the copy,
// more than any other head, and corrupting it alone costs most of it.
TEST(PairedPatching, DenoisingTheInductionHeadRecoversTheCopy) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const int64_t len = 40, lines = 20;
  const auto probe = make_probe(len, lines, 3);
  ScoringRun run;
  run.streams = 1;
  const auto set = sweep_set("heads", m.config);
  const auto b = paired_patch_bits(m, probe.repeated, probe.corrupt, run, set);
  std::vector<uint8_t> second(b.clean.size(), 0);  // byte k = coded token k; second copies, no newline
  for (size_t k = 0; k < second.size(); ++k) {
    const auto col = static_cast<int64_t>(k % (2 * len + 1));
    second[k] = col >= len && col < 2 * len;
  }
  const double effect = sum_over(b.corrupt, second) - sum_over(b.clean, second);
  const double bytes = static_cast<double>(len * lines);
  EXPECT_GT(effect / bytes, 3.0) << "the corruption's cost on the second copies, bits/byte";
  const auto scores = head_scores(m, 50, 4, 0);
  size_t best_head = 0;
  auto induction = [&](size_t i) { return scores.score(scores.induction, set[i].layer, set[i].index); };
  for (size_t i = 0; i < set.size(); ++i)
    if (induction(i) > induction(best_head)) best_head = i;
  std::vector<double> recovered(set.size());
  for (size_t i = 0; i < set.size(); ++i)
    recovered[i] = (sum_over(b.corrupt, second) - sum_over(b.denoised[i], second)) / effect;
  const size_t best = static_cast<size_t>(std::max_element(recovered.begin(), recovered.end()) - recovered.begin());
  EXPECT_EQ(set[best].name(), set[best_head].name()) << "the head whose restoration recovers most";
  EXPECT_GT(recovered[best_head], 0.5) << set[best_head].name();
  const double noised = (sum_over(b.noised[best_head], second) - sum_over(b.clean, second)) / effect;
  EXPECT_GT(noised, 0.3) << "share of the effect lost by corrupting " << set[best_head].name() << " alone";
}

TEST(PairedPatching, UnpairableInputsAreRefusedByName) {
  auto m = test::tiny_byte_lm(3, 16);
  ScoringRun run;
  run.streams = 2;
  test::expect_error([&] { check_pairable(m, "abcdefgh", "abcdefg", run, "A.txt", "B.txt"); },
                     {"B.txt", "A.txt", "stream", "tokens"});
  auto learned = test::tiny_byte_lm(3, 16, /*learned=*/true);
  test::expect_error([&] { check_pairable(learned, "abcdefgh", "abcdefgh", run, "A.txt", "B.txt"); },
                     {"rolling", "strided"});
  test::expect_error([&] { (void)paired_patch_bits(m, "abcdefgh", "abcdefgh", run, {}); }, {"no components"});
}

}  // namespace
}  // namespace ccc::circuits
