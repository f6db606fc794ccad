#include "analysis/sae_eval.h"

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

const char* const kHook = "blocks.0.mlp.hook_post";

// relu over [I, −I]: f = (relu(x), relu(−x)), x̂ = relu(x) − relu(−x) = x exactly in floating point.
Sae identity_sae(int64_t d) {
  Sae s;
  s.arch = SaeArch::kRelu;
  const auto eye = torch::eye(d);
  s.W_enc = torch::cat({eye, -eye}, 1).unsqueeze(0);  // [1, d, 2d]
  s.b_enc = torch::zeros({2 * d});
  s.W_dec = torch::cat({eye, -eye}, 0).unsqueeze(0);  // [1, 2d, d]
  s.b_dec = torch::zeros({1, d});
  return s;
}

// A spliced identity dictionary changes no bit: bits_sae equals bits_clean exactly and recovers 100%.
// bits_zero equals a zero edit written here (every position but BOS), and the mean run lies between.
TEST(SaeEval, AnIdentityDictionaryRecoversEveryBitExactly) {
  auto m = test::tiny_byte_lm(3, 64);
  const int64_t d = m.config.d_mlp;
  ASSERT_GT(d, 0);
  const Sae s = identity_sae(d);
  const std::string text = test::synthetic_text(5, 700);
  model::StreamOptions opt;
  opt.streams = 2;
  const SaeEval e = evaluate_sae(m, s, kHook, text, opt);
  EXPECT_EQ(e.bits_sae, e.bits_clean) << "max difference " << e.bits_sae - e.bits_clean;
  EXPECT_EQ(e.bits_recovered, 1.0);
  EXPECT_EQ(e.bits_recovered_mean, 1.0);
  EXPECT_NEAR(e.explained_variance, 1.0, 1e-9);
  EXPECT_EQ(e.rows, e.tokens - 2) << "every fed position but BOS is spliced (a stream's last token is never fed)";
  EXPECT_EQ(e.bytes, static_cast<int64_t>(text.size()));
  EXPECT_NE(e.bits_zero, e.bits_clean);
  // zero edit by hand: position > 0 zeroed
  model::HookSet hs;
  hs.edit(kHook, [](const torch::Tensor& x, const model::HookContext& ctx) {
    auto y = x.clone();
    for (int64_t r = 0; r < x.size(0); ++r)
      for (int64_t i = 0; i < x.size(1); ++i)
        if (ctx.run->position_at(r, i) > 0) y[r][i].zero_();
    return y;
  });
  opt.hooks = [&](int64_t) { return &hs; };
  double zero = 0;
  for (const auto& st : model::segmented_token_bits(m, text, opt))
    for (double b : st) zero += b;
  EXPECT_NEAR(e.bits_zero, zero, 1e-6 * zero);
  // l0: the identity fires one of its two latents wherever x ≠ 0; dead latents are those never negative/positive
  EXPECT_GT(e.l0, 0.5 * static_cast<double>(d));
  EXPECT_LE(e.l0, static_cast<double>(d));
}

// Removing feature j of the identity dictionary (relu(x_j), decoder row e_j) leaves min(x_j, 0) at every
// position but BOS: the bits equal a hand-written edit doing that.
TEST(SaeEval, FeatureAblationBitsEqualTheEditItStandsFor) {
  auto m = test::tiny_byte_lm(4, 64);
  const Sae s = identity_sae(m.config.d_mlp);
  const std::string text = test::synthetic_text(6, 500);
  model::StreamOptions opt;
  opt.streams = 2;
  const auto bits = feature_ablation_bits(m, s, kHook, text, opt, {3, 7});
  ASSERT_EQ(bits.size(), 2u);
  for (int64_t j : {3, 7}) {
    model::HookSet hs;
    hs.edit(kHook, [j](const torch::Tensor& x, const model::HookContext& ctx) {
      auto y = x.clone();
      for (int64_t r = 0; r < x.size(0); ++r)
        for (int64_t i = 0; i < x.size(1); ++i)
          if (ctx.run->position_at(r, i) > 0) y[r][i][j] = torch::clamp_max(x[r][i][j], 0.0);
      return y;
    });
    model::StreamOptions o = opt;
    o.hooks = [&](int64_t) { return &hs; };
    std::vector<double> ref;
    for (const auto& st : model::segmented_token_bits(m, text, o)) ref.insert(ref.end(), st.begin(), st.end());
    const auto& got = bits[j == 3 ? 0 : 1];
    ASSERT_EQ(got.size(), ref.size());
    double diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) diff = std::max(diff, std::abs(got[i] - ref[i]));
    EXPECT_LT(diff, 1e-9) << "feature " << j << ": max |diff| " << diff;
  }
}

// A wrong hook or size is refused with the hook named; removing every feature leaves x − (x̂ − b_dec).
TEST(SaeEval, SplicesAreCheckedAndFeatureAblationRemovesTheFeaturesContribution) {
  auto m = test::tiny_byte_lm(3, 64);
  const Sae s = identity_sae(m.config.d_mlp);
  test::expect_error([&] { check_sae_fits(m, s, "blocks.0.hook_resid_post", "sae eval"); }, {"blocks.0.hook_resid_post", "values per position"});
  test::expect_error([&] { check_sae_fits(m, s, "blocks.9.mlp.hook_post", "sae eval"); }, {"no hook", "blocks.9.mlp.hook_post"});
  auto gen = at::detail::createCPUGenerator(2);
  Sae r;
  r.arch = SaeArch::kTopK;
  r.k = 3;
  r.W_enc = torch::randn({1, 6, 10}, gen);
  r.b_enc = torch::randn({10}, gen) * 0.1;
  r.W_dec = torch::randn({1, 10, 6}, gen);
  r.b_dec = torch::randn({1, 6}, gen);
  std::vector<int64_t> all(10);
  for (int64_t j = 0; j < 10; ++j) all[static_cast<size_t>(j)] = j;
  model::HookSet hs;
  install_feature_ablation(hs, r, "h", all);
  const auto x = torch::randn({1, 4, 6}, gen);
  model::HookRegistry reg;
  reg.names = {"h"};
  reg.opt_in = {false};
  hs.bind(reg);
  const auto y = hs.run(0, x, 0, 1);  // positions 1..4: none is BOS
  const auto xhat = r.decode(r.encode(x.squeeze(0).unsqueeze(1))).squeeze(1);
  EXPECT_LT((y.squeeze(0) - (x.squeeze(0) - (xhat - r.b_dec[0]))).abs().max().item<double>(), 1e-5);
  test::expect_error([&] { install_feature_ablation(hs, r, "h", {10}); }, {"feature 10"});
}

}  // namespace
}  // namespace ccc::analysis
