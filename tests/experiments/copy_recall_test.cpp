#include "experiments/lib/copy_recall.h"
#include "experiments/lib/batched.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "circuits/discovery.h"
#include "circuits/head_detectors.h"
#include "model/base/error.h"
#include "model/core/hooks.h"
#include "model/core/score.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

model::LoadedModel as_loaded(const std::string& family) {
  model::LoadedModel m;
  m.model = test::tiny_model(family, 3);
  m.config = m.model->config();
  m.source = "tiny " + family;
  return m;
}

std::vector<std::vector<int64_t>> rows_of(const torch::Tensor& t) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t r = 0; r < t.size(0); ++r) rows.emplace_back(t[r].data_ptr<int64_t>(), t[r].data_ptr<int64_t>() + t.size(1));
  return rows;
}

// The batched block scorer against the model's own full-sequence scorer (model::score_bits), row by row,
// with and without an ablation installed in one block only.
TEST(CopyRecall, BlockScoringMatchesScoreBits) {
  auto m = as_loaded("byte_attn_only");
  const auto tok = test::random_tokens(m.model, 3, 9, 21);
  const std::vector<std::vector<circuits::Component>> sets = {{}, {{circuits::Component::Kind::kHead, 1, 0}}};
  const auto bits = next_token_bits(m, tok, 2, ablation_edits(m.config, sets, circuits::Mode::kZero, nullptr, 0), 4);
  ASSERT_EQ(bits.size(), 2u);
  for (int64_t r = 0; r < 3; ++r) {
    const std::vector<int64_t> row(tok[r].data_ptr<int64_t>(), tok[r].data_ptr<int64_t>() + tok.size(1));
    const auto ref = model::score_bits(m.model, row);
    for (size_t t = 0; t < ref.size(); ++t) EXPECT_NEAR(bits[0][r][static_cast<int64_t>(t)].item<double>(), ref[t], 1e-4) << r << " " << t;
  }
  EXPECT_GT((bits[1] - bits[0]).abs().max().item<double>(), 1e-3) << "the ablated block differs";
}

// Every family (LayerNorm with biases and learned positions, RMSNorm without biases, parallel attention,
// attention-only): the heads', MLPs', embedding's and attention-output biases' direct contributions plus the
// final norm's bias term add up to logit(target) − logit(other) at the last position.
TEST(CopyRecall, DirectLogitAttributionsSumToTheLogitDifference) {
  for (const char* family : test::kTinyFamilies) {
    auto m = as_loaded(family);
    const auto tokens = rows_of(test::random_tokens(m.model, 3, 7, 11));
    const auto comps = circuits::discovery_components(m.config);
    const std::vector<int64_t> target = {1, 5, 9}, other = {2, 3, 4};
    const auto d = direct_logit_attribution(m, tokens, comps, target, other);
    ASSERT_EQ(d.logit_diff.size(), 3u);
    for (size_t r = 0; r < 3; ++r) {
      double sum = 0;
      for (double x : d.per_component[r]) sum += x;
      for (double x : d.rest[r]) sum += x;
      EXPECT_NEAR(sum, d.logit_diff[r], 1e-4 * std::max(1.0, std::abs(d.logit_diff[r])))
          << family << " row " << r << ": components + rest " << sum << " vs the logit difference " << d.logit_diff[r];
      EXPECT_GT(std::abs(d.logit_diff[r]), 1e-6) << family;
    }
  }
}

// A causal check of the attribution: a last-layer component's output removed at the last position, with the
// final norm's scale held at its clean value, moves the logit difference by exactly minus its attribution
// (nothing after it reads it but the unembedding): a head of an attention-only model, the MLP of GPT-2.
TEST(CopyRecall, DirectAttributionIsTheLastLayersDirectEffect) {
  for (const std::string family : {"byte_attn_only", "gpt2"}) {
    auto m = as_loaded(family);
    const auto tok = test::random_tokens(m.model, 2, 6, 4);
    const auto comps = circuits::discovery_components(m.config);
    const int64_t last = m.config.n_layers - 1, T = tok.size(1);
    const circuits::Component c = family == "gpt2" ? circuits::Component{circuits::Component::Kind::kMlp, last, -1}
                                                   : circuits::Component{circuits::Component::Kind::kHead, last, 1};
    const size_t ci = static_cast<size_t>(std::find(comps.begin(), comps.end(), c) - comps.begin());
    ASSERT_LT(ci, comps.size());
    const std::vector<int64_t> target = {7, 2}, other = {3, 8};
    const auto d = direct_logit_attribution(m, rows_of(tok), comps, target, other);
    torch::Tensor scale;
    model::HookSet clean;
    clean.observe("ln_final.hook_scale", [&](const torch::Tensor& x, const model::HookContext&) { scale = x.clone(); });
    model::RunOptions run;
    run.hooks = &clean;
    torch::NoGradGuard ng;
    (void)m.model->forward(tok, run);
    model::HookSet cut;
    cut.edit(c.hook(), [&](const torch::Tensor& x, const model::HookContext&) {
      auto y = x.clone();
      if (c.kind == circuits::Component::Kind::kHead) y.select(1, T - 1).select(1, c.index).zero_();
      else y.select(1, T - 1).zero_();
      return y;
    });
    cut.edit("ln_final.hook_scale", [&](const torch::Tensor&, const model::HookContext&) { return scale.clone(); });
    run.hooks = &cut;
    const auto logits = m.model->forward(tok, run).select(1, T - 1).to(torch::kFloat64);
    for (int64_t r = 0; r < 2; ++r) {
      const double after = (logits[r][target[static_cast<size_t>(r)]] - logits[r][other[static_cast<size_t>(r)]]).item<double>();
      EXPECT_NEAR(d.logit_diff[static_cast<size_t>(r)] - after, d.per_component[static_cast<size_t>(r)][ci], 1e-4)
          << family << " " << c.name() << " row " << r;
    }
  }
}

// On the default model (induction heads 1.2 and 3.0 by the independent [BOS, r, r] detector, ccc heads) with a small
// run: planted copies win more often as k grows, the copy side's strongest component is one of the detector's
// two strongest induction heads (both on the copy side), the copy side's removal lowers the win rate where copying wins, every ablated
// statistic has its null under the same name, and the same seed reproduces the result.
TEST(CopyRecall, OnTheDefaultModelTheInductionHeadsAreTheCopySide) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/default");
  const std::string dir = model::default_corpus_dir(CCC_SOURCE_DIR);
  const auto names = model::present_corpora(dir);
  ASSERT_FALSE(names.empty()) << "no corpus in " << dir;
  const auto text = model::held_out_mix(dir, names, 3000).text;
  CopyRecallOptions o;
  o.positions = 12;
  o.repeats = {0, 1, 4};
  o.null_draws = 6;
  o.alphas = {0, 1};
  o.resamples = 300;
  CopyRecallDetail d;
  const Result r = run_copy_vs_recall(m, text, o, &d);
  ASSERT_EQ(d.positions.size(), 12u);
  for (const auto& p : d.positions) {
    EXPECT_EQ(static_cast<uint8_t>(text[static_cast<size_t>(p.offset)]), p.fact);
    EXPECT_NE(p.fact, p.counterfactual);
    EXPECT_LE(p.bits_fact[0], -std::log2(0.9) + 1e-9) << "selected for p >= 0.9 at k = 0";
  }
  {  // the k = 0 prompt [BOS] P b scored by model::score_bits: its last bit is bits_fact_k0
    const auto& p = d.positions[0];
    std::vector<int64_t> row{m.config.bos_id};
    for (int64_t i = p.offset - 24; i <= p.offset; ++i) row.push_back(static_cast<uint8_t>(text[static_cast<size_t>(i)]));
    EXPECT_NEAR(model::score_bits(m.model, row).back(), p.bits_fact[0], 1e-4);
  }
  EXPECT_EQ(d.win_clean[0], 0.0) << "no copy, no counterfactual win (p(fact) >= 0.9)";
  EXPECT_GT(d.win_clean[2], d.win_clean[0]);
  // the detector's two strongest induction heads push the copy, and the copy side's strongest is one of them
  const auto heads = circuits::head_scores(m);
  std::vector<size_t> order(heads.induction.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return heads.induction[a] > heads.induction[b]; });
  auto name = [&](size_t i) { return std::to_string(i / static_cast<size_t>(heads.n_heads)) + "." + std::to_string(i % static_cast<size_t>(heads.n_heads)); };
  const std::set<std::string> top_induction = {name(order[0]), name(order[1])};
  ASSERT_FALSE(d.copy_components.empty());
  EXPECT_TRUE(top_induction.count(d.copy_components[0])) << d.copy_components[0];
  for (const auto& c : d.components)
    if (top_induction.count(c.component)) {
      EXPECT_EQ(c.side, "copy") << c.component << " " << c.logit_diff;
    }
  EXPECT_EQ(d.components.front().side, "copy");
  EXPECT_LT(d.win_copy_ablated[2], d.win_clean[2]);
  // the dose–response at α = 1 is the clean run
  for (size_t j = 0; j < d.repeats.size(); ++j) EXPECT_DOUBLE_EQ(d.dose_copy[1][j], d.win_clean[j]);
  std::set<std::string> names_null;
  for (const auto& x : r.null) names_null.insert(x.name);
  for (const auto& x : r.measurements) {
    EXPECT_LE(x.ci_low, x.value + 1e-12) << x.name;
    if (x.name.find("_ablated") != std::string::npos) {
      EXPECT_TRUE(names_null.count(x.name)) << x.name;
    }
  }
  const auto again = run_copy_vs_recall(m, text, o);
  EXPECT_EQ(again.to_json(), r.to_json()) << "same seed, same result";
  o.seed = 1;
  const auto other = run_copy_vs_recall(m, text, o);
  EXPECT_NE(other.to_json()["null"], r.to_json()["null"]) << "the null is seeded";
}

// The known answer on a small model: in the organism ccc-attn2 (2 attention-only layers) one head carries
// the planted copy — 1.2, the [BOS, r, r] detector's strongest induction head (0.94): it tops the copy side,
// pushing several times harder than any other component, and ablating it alone leaves the counterfactual
// no win at k = 1.
TEST(CopyRecall, OnTheOrganismOneHeadAloneCarriesTheCopy) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const std::string dir = model::default_corpus_dir(CCC_SOURCE_DIR);
  const auto mix = model::held_out_mix(dir, model::present_corpora(dir), 3000);
  const auto& text = mix.text;
  CopyRecallOptions o;
  for (const auto& r : mix.ranges) {  // positions spread over the domains, as `ccc experiment` does
    std::vector<uint8_t> on(text.size(), 0);
    std::fill(on.begin() + static_cast<std::ptrdiff_t>(r.begin), on.begin() + static_cast<std::ptrdiff_t>(r.end), 1);
    o.byte_labels.emplace_back("corpus:" + r.corpus, std::move(on));
  }
  o.positions = 16;
  o.repeats = {0, 1, 4};
  o.min_p = 0.5;  // an attention-only model is rarely sure of a byte from 24 bytes alone
  o.null_draws = 5;
  o.alphas = {1};
  o.resamples = 200;
  CopyRecallDetail d;
  (void)run_copy_vs_recall(m, text, o, &d);
  const auto heads = circuits::head_scores(m);
  EXPECT_GT(heads.score(heads.induction, 1, 2), 0.9);
  ASSERT_GE(d.components.size(), 2u);
  ASSERT_EQ(d.components.front().component, "1.2");
  EXPECT_GT(d.components[0].logit_diff, 3 * std::max(0.0, d.components[1].logit_diff))
      << "1.2 pushes the copy several times harder than any other component (" << d.components[1].component << ")";
  EXPECT_GT(d.win_clean[1], 0.0);
  EXPECT_EQ(d.components.front().win_rate_ablated, 0.0) << "without 1.2 the copy never wins at k = 1";
  EXPECT_GT(d.win_clean[2], d.win_clean[1]);
}

TEST(CopyRecall, RefusesWhatItCannotMeasure) {
  auto bpe = as_loaded("gpt2");
  test::expect_error([&] { run_copy_vs_recall(bpe, std::string(4000, 'a'), CopyRecallOptions{}); }, {"byte-level"});
  auto byte = test::tiny_byte_lm(1, 16);
  CopyRecallOptions o;
  test::expect_error([&] { run_copy_vs_recall(byte, std::string(4000, 'a'), o); }, {"n_ctx = 16", "--repeats"});
  o.repeats = {0, 2};
  test::expect_error([&] { run_copy_vs_recall(byte, std::string(4000, 'a'), o); }, {"k = 1", "--repeats"});
}

}  // namespace
}  // namespace ccc::experiments
