#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "experiments/lib/finetune_effects.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"
#include "model/training/trainer.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

TEST(FinetuneEffects, PearsonAgainstHandValues) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-15);
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0, 1e-15);
  // x = 1..5, y = 2, 1, 4, 3, 5: Sxy = 8, Sxx = Syy = 10
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}), 0.8, 1e-15);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));
  EXPECT_THROW(pearson({1, 2}, {1}), Error);
}

// A tiny byte model fine-tuned on one of three corpora with two subsets: every frozen tensor stays
// bit-identical, the trained ones move; each entry of the circuit table equals one direct ablation of that
// component on that snapshot (the ccc ablate path: collect_reference + ablated_bits, one component at a
// time), the shift is after − before with a CI around it, and the whole result repeats with its seed.
TEST(FinetuneEffects, FrozenParametersStayBitIdenticalAndTheTableEqualsDirectAblations) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("toy.txt"), test::synthetic_text(1, 12000));
  write_file_atomic(tmp.file("ref.txt"), test::synthetic_text(2, 12000));
  write_file_atomic(tmp.file("rep.txt"), test::repeated_strings(300, 20, 3, true));
  const auto corpora = model::load_corpora(tmp.path(), {"toy", "ref", "rep"});
  auto m = test::tiny_byte_lm(3, 32);
  model::save_model(tmp.file("base"), m.config, m.model);
  FinetuneEffectsOptions o;
  o.target = "toy";
  o.subsets = {"attn", "layers:0"};
  o.steps = {2, 4};
  o.batch_size = 4;
  o.seq_len = 32;
  o.lr = 1e-2;
  o.eval_bytes = 200;
  o.resamples = 50;
  o.null_draws = 50;
  o.snapshot_dir = tmp.file("snaps");
  o.units_bytes = 300;
  o.crosscoder_train_bytes = 1500;
  o.crosscoder.steps = 100;
  o.crosscoder.expansion = 2;
  o.crosscoder.k = 4;
  o.crosscoder.batch = 256;
  o.mechanism_bytes = 0;  // the competition and copy-vs-recall runs have their own tests
  o.copy_recall_positions = 0;
  FinetuneEffectsDetail d;
  const Result r = run_finetune_effects(tmp.file("base"), corpora, o, &d);
  ASSERT_EQ(d.runs.size(), 4u);
  EXPECT_EQ(d.domains, (std::vector<std::string>{"toy", "ref", "rep"}));
  const auto base = model::load_model(tmp.file("base"));
  for (const auto& run : d.runs) {
    EXPECT_EQ(run.frozen_max_abs_diff, 0.0) << run.params << " " << run.steps;
    EXPECT_GT(run.trainable_params, 0);
    EXPECT_LT(run.trainable_params, base.config.n_params());
    EXPECT_NE(run.fingerprint, base.fingerprint);  // the trained tensors moved
  }
  // the snapshot on disk: frozen tensors equal the base's bit for bit
  auto snap = model::load_model(d.runs[1].model_dir);
  EXPECT_EQ(snap.fingerprint, d.runs[1].fingerprint);
  const auto trained = model::select_parameters(snap.model, "attn");
  auto base_params = base.model->named_parameters();
  for (const auto& item : snap.model->named_parameters()) {
    if (std::find(trained.begin(), trained.end(), item.key()) != trained.end()) continue;
    EXPECT_TRUE(torch::equal(item.value(), base_params[item.key()])) << item.key();
  }
  // every entry of the table against a direct ablation of that component alone
  const auto comps = circuits::sweep_set("heads", snap.config);
  auto all = comps;
  const auto mlps = circuits::sweep_set("mlps", snap.config);
  all.insert(all.end(), mlps.begin(), mlps.end());
  ASSERT_EQ(d.components.size(), all.size());
  circuits::ScoringRun run;
  run.mode = circuits::Mode::kMean;
  double worst = 0;
  for (size_t k = 0; k < d.domains.size(); ++k) {
    std::string text = corpora[k == 0 ? 0 : k].split(model::Split::kHeldOut).substr(0, 200);
    const auto clean = circuits::ablated_bits(snap, text, run, {}, nullptr);
    double clean_sum = 0;
    for (double b : clean) clean_sum += b;
    EXPECT_NEAR(d.runs[1].table.clean_bits_per_byte[k], clean_sum / static_cast<double>(clean.size()), 1e-12);
    for (size_t c = 0; c < all.size(); ++c) {
      const auto ref = circuits::collect_reference(snap, text, {all[c]}, circuits::Mode::kMean, 0, 0, 0);
      const auto abl = circuits::ablated_bits(snap, text, run, {all[c]}, &ref);
      double delta = 0;
      for (size_t i = 0; i < abl.size(); ++i) delta += abl[i] - clean[i];
      delta /= static_cast<double>(abl.size());
      worst = std::max(worst, std::fabs(delta - d.runs[1].table.delta_bits_per_byte[c][k]));
      const double shift = d.runs[1].table.delta_bits_per_byte[c][k] - d.base.delta_bits_per_byte[c][k];
      EXPECT_DOUBLE_EQ(d.runs[1].shift.shift[c][k], shift);
      EXPECT_LE(d.runs[1].shift.ci_low[c][k], d.runs[1].shift.ci_high[c][k]);
    }
  }
  EXPECT_LT(worst, 1e-4) << "largest |table - direct ablation| " << worst;
  // the domain changes are the clean tables' differences; the target is domain 0; the exchange rate is the
  // other domains' mean change per bit gained on the target
  EXPECT_DOUBLE_EQ(d.runs[1].delta_bits_per_byte[0], d.runs[1].table.clean_bits_per_byte[0] - d.base.clean_bits_per_byte[0]);
  for (const auto& run : d.runs) {
    EXPECT_NEAR(run.other_delta_mean, (run.delta_bits_per_byte[1] + run.delta_bits_per_byte[2]) / 2, 1e-15);
    if (run.delta_bits_per_byte[0] < 0) {
      EXPECT_NEAR(run.exchange_rate, run.other_delta_mean / -run.delta_bits_per_byte[0], 1e-12);
    } else {
      EXPECT_TRUE(std::isnan(run.exchange_rate));
    }
  }
  EXPECT_EQ(r.measurements[0].name, "circuit_shift_correlation");
  EXPECT_EQ(r.null[0].name, "circuit_shift_correlation");
  EXPECT_GE(r.measurements[0].value, -1.0);
  EXPECT_LE(r.measurements[0].value, 1.0);
  EXPECT_EQ(d.null_correlations.size(), 50u);
  // the comparison of base and the first subset's longest snapshot: unit classes over every MLP unit, a crosscoder
  EXPECT_EQ(d.compared, "attn/4");
  int64_t before = 0, after = 0;
  for (const auto& [k, v] : d.units_before) before += v;
  for (const auto& [k, v] : d.units_after) after += v;
  EXPECT_EQ(before, base.config.n_layers * base.config.d_mlp);
  EXPECT_EQ(after, before);
  EXPECT_EQ(d.units_rows, 3 * 300);
  ASSERT_TRUE(d.has_crosscoder);
  EXPECT_EQ(d.crosscoder.shared + d.crosscoder.a_only + d.crosscoder.b_only + d.crosscoder.between + d.crosscoder.dead, d.crosscoder.d_sae);
  // reproducible by seed
  o.snapshot_dir.clear();
  FinetuneEffectsDetail d2;
  const Result r2 = run_finetune_effects(tmp.file("base"), corpora, o, &d2);
  EXPECT_EQ(r2.to_json().dump(), r.to_json().dump());
  EXPECT_EQ(d2.runs[3].fingerprint, d.runs[3].fingerprint);
  // refusals
  o.target = "nope";
  EXPECT_THROW(run_finetune_effects(tmp.file("base"), corpora, o), Error);
  o.target = "toy";
  o.steps = {4, 2};
  EXPECT_THROW(run_finetune_effects(tmp.file("base"), corpora, o), Error);
}

}  // namespace
}  // namespace ccc::experiments
