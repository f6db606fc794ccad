#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "analysis/crosscoder.h"
#include "model/base/error.h"
#include "model/core/bits.h"
#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

CrosscoderOptions small_options() {
  CrosscoderOptions o;
  o.expansion = 4;
  o.k = 8;
  o.steps = 300;
  o.batch = 256;
  o.lr = 3e-3;
  o.window = 30;
  return o;
}

// Two copies of the same model: every live latent's two decoders carry it equally, so no latent is
// specific to either model, and removing the (empty) model-specific groups costs nothing. The splice and
// the clean score are real bits: the clean figure equals a direct forward of the same windows.
TEST(Crosscoder, TwoIdenticalModelsHaveNoModelSpecificLatents) {
  auto a = test::tiny_byte_lm(4, 32), b = test::tiny_byte_lm(4, 32);
  const std::string train = test::synthetic_text(11, 6000), eval = test::synthetic_text(12, 1500);
  const auto o = small_options();
  const auto r = diff_models(a, b, train, eval, o);
  EXPECT_EQ(r.hook, "blocks.1.hook_resid_post");
  EXPECT_EQ(r.d_sae, 4 * a.config.d_model);
  EXPECT_EQ(r.eval_rows, 1500 / 30 * 30);
  EXPECT_EQ(r.a_only_raw, 0);
  EXPECT_EQ(r.b_only_raw, 0);
  EXPECT_EQ(r.a_only + r.b_only, 0);
  EXPECT_GT(r.shared, r.d_sae / 4);
  double worst = 0;
  for (size_t j = 0; j < r.group.size(); ++j)
    if (r.group[j] != "dead") worst = std::max(worst, std::fabs(r.relative_norm[j] - 0.5));
  EXPECT_LT(worst, 0.2) << "largest |relative norm - 0.5| of a live latent";
  EXPECT_NEAR(r.explained_variance_a, r.explained_variance_b, 0.01);
  EXPECT_GT(r.explained_variance_b, 0.5);
  EXPECT_EQ(r.delta_bits_a_only, 0.0);
  EXPECT_EQ(r.delta_bits_b_only, 0.0);
  EXPECT_GT(r.delta_bits_shared, 0.0);  // the shared latents carry the reconstruction
  // the clean bits against one forward of the same windows
  auto t = torch::empty({50, 31}, torch::kInt64);
  for (int64_t w = 0; w < 50; ++w) {
    t[w][0] = a.config.bos_id;
    for (int64_t i = 0; i < 30; ++i) t[w][1 + i] = static_cast<uint8_t>(eval[static_cast<size_t>(w * 30 + i)]);
  }
  torch::InferenceMode guard;
  const auto logits = b.model->forward(t);
  const double direct = model::token_bits(logits.narrow(1, 0, 30).to(torch::kFloat64), t.narrow(1, 1, 30)).sum().item<double>();
  EXPECT_NEAR(r.bits_clean_b, direct, 1e-6 * direct);
}

// Model A with its embedding zeroed carries nothing at the hook (the same vector at every position); model
// B is the intact model. Every live latent belongs to B alone, and latent scaling finds nothing of them in A.
TEST(Crosscoder, AModelThatCarriesNothingLeavesEveryLatentToTheOtherAndBadInputIsRefused) {
  auto a = test::tiny_byte_lm(4, 32), b = test::tiny_byte_lm(4, 32);
  {
    torch::NoGradGuard ng;
    for (auto& item : a.model->named_parameters())
      if (item.key().find("W_E") != std::string::npos) item.value().zero_();
  }
  const std::string train = test::synthetic_text(11, 6000), eval = test::synthetic_text(12, 1500);
  auto lo = small_options();
  lo.steps = 1500;
  const auto r = diff_models(a, b, train, eval, lo);
  EXPECT_EQ(r.a_only_raw, 0);
  // a few rarely firing latents keep part of their random initial A-decoder
  EXPECT_GT(r.b_only, 5 * (r.shared + r.between)) << r.to_json().dump();
  EXPECT_GT(r.b_only, r.d_sae / 4);
  EXPECT_EQ(r.b_only, r.b_only_raw);  // latent scaling keeps them: A's error holds none of their directions
  for (size_t j = 0; j < r.group.size(); ++j)
    if (r.group[j] == "b_only") {
      EXPECT_LT(std::fabs(r.nu[j]), 0.2) << "latent " << j;  // far below scaling_keep (0.5)
    }
  EXPECT_GT(r.delta_bits_b_only, 0.0);
  auto o = small_options();
  o.hook = "blocks.9.hook_resid_post";
  EXPECT_THROW(diff_models(a, b, train, eval, o), Error);
  EXPECT_THROW(diff_models(a, b, train, "short", small_options()), Error);
}

}  // namespace
}  // namespace ccc::analysis
