#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "circuits/sweep.h"
#include "experiments/lib/icl_circuit.h"
#include "experiments/lib/scaling.h"
#include "model/base/error.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

model::LoadedModel shipped(const std::string& name) {
  return model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/" + name);
}

std::string held_out(size_t per_corpus) {
  const std::string dir = model::default_corpus_dir(CCC_SOURCE_DIR);
  return model::held_out_mix(dir, model::present_corpora(dir), per_corpus).text;
}

TEST(Scaling, PowerLawFitRecoversItsExponentAndCountsParameters) {
  const std::vector<double> x = {1e5, 4e5, 2e6, 8e6};
  std::vector<double> y;
  for (double v : x) y.push_back(3.0 * std::pow(v, -0.25));
  const auto [alpha, b] = fit_power_law(x, y);
  EXPECT_NEAR(alpha, 0.25, 1e-12);
  EXPECT_NEAR(b, std::log2(3.0), 1e-9);
  EXPECT_THROW(fit_power_law({1e5}, {2.0}), Error);
  EXPECT_THROW(fit_power_law({1e5, 1e5}, {2.0, 3.0}), Error);
  // a byte model: everything but the tied embedding; GPT-2 also leaves out its learned positions
  auto c = shipped("ccc-byte-xs").config;
  EXPECT_EQ(non_embedding_params(c), c.n_params() - c.d_vocab * c.d_model);
  const auto g = test::tiny_config("gpt2");
  EXPECT_EQ(non_embedding_params(g), g.n_params() - g.d_vocab * g.d_model - (g.tied_embed ? 0 : g.d_vocab_out * g.d_model) -
                                         g.n_ctx * g.d_model);
}

// Three sizes of the shipped family on every held-out domain: bigger is better, the exponent's CI holds
// its value and lies above a null centred on 0, and each bits-per-byte figure is the compressor-policy
// total of that model on that domain.
TEST(Scaling, TheShippedFamilyCompressesBetterWithSize) {
  auto xs = shipped("ccc-byte-xs"), s = shipped("ccc-byte-s"), m = shipped("ccc-byte-m");
  const std::string text = held_out(800);
  const std::vector<std::pair<std::string, std::string>> domains = {{"first", text.substr(0, text.size() / 2)},
                                                                    {"second", text.substr(text.size() / 2)}};
  ScalingOptions o;
  o.resamples = 100;
  o.null_draws = 50;
  ScalingDetail d;
  const Result r = run_scaling({&xs, &s, &m}, domains, o, &d);
  ASSERT_EQ(d.models.size(), 3u);
  EXPECT_GT(d.mean_bits_per_byte[0], d.mean_bits_per_byte[2]);
  const auto& a = r.measurements[0];
  EXPECT_EQ(a.name, "power_law_exponent");
  EXPECT_DOUBLE_EQ(a.value, d.exponent_all);
  EXPECT_GT(a.value, 0.0);
  EXPECT_LE(a.ci_low, a.value);
  EXPECT_GE(a.ci_high, a.value);
  EXPECT_LT(std::abs(r.null[0].value), 0.01) << "exchangeable models fit no slope";
  EXPECT_LT(r.null[0].ci_high, a.ci_low);
  circuits::ScoringRun run;
  const auto bits = circuits::ablated_bits(s, domains[1].second, run, {}, nullptr);
  EXPECT_NEAR(d.bits_per_byte[1][1], circuits::total_bits(bits) / static_cast<double>(domains[1].second.size()), 1e-9);
  EXPECT_EQ(run_scaling({&xs, &s, &m}, domains, o).to_json(), r.to_json()) << "same seed, same result";
  test::expect_error([&] { run_scaling({&xs, &s}, domains, o); }, {"at least 3 models"});
}

// The organism ccc-attn2 (induction heads 1.2 and 1.3): the experiment finds them with the detector, and
// ablating them costs the repeated span's second copy most of what copying saved, far more than the rest.
TEST(Icl, OnTheOrganismTheInductionHeadsCarryTheSecondCopy) {
  auto m = shipped("ccc-attn2");
  IclCircuitOptions o;
  o.windows = 8;
  o.window_len = 255;
  o.late = 200;
  o.span = 100;
  o.null_draws = 4;
  o.resamples = 200;
  IclCircuitDetail d;
  const Result r = run_icl_circuit(m, held_out(1000), o, &d);
  EXPECT_EQ(d.induction_heads, (std::vector<std::string>{"1.2", "1.3"}));
  EXPECT_TRUE(d.mlps.empty()) << "attention-only";
  EXPECT_LT(d.second_copy[0], d.first_copy[0] - 1.0) << "copying saves bits on the second copy";
  EXPECT_GT(d.second_copy[1], d.first_copy[0] * 0.8) << "without the induction heads the second copy costs about as much as the first";
  bool rise = false;
  for (const auto& x : r.measurements)
    if (x.name == "second_copy_rise_induction") {
      rise = true;
      EXPECT_GT(x.ci_low, 1.5);
    }
  EXPECT_TRUE(rise);
  EXPECT_EQ(r.to_json(), run_icl_circuit(m, held_out(1000), o).to_json()) << "same seed, same result";
}

}  // namespace
}  // namespace ccc::experiments
