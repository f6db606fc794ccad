#include "model/transformer.h"

#include <gtest/gtest.h>

#include "model/error.h"
#include "model/score.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

const char* kFamilies[] = {"gpt2", "gpt_neox", "llama", "byte_attn_only"};

TEST(TransformerTest, IncrementalMatchesFullForward) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(11);
    const int64_t b = 3, p = 40;
    auto toks = torch::randint(0, m->config().d_vocab, {b, p}, torch::kInt64);
    auto full = m->forward(toks);
    // prefill 7 tokens, then one token at a time
    auto cache = m->make_cache(b);
    std::vector<torch::Tensor> parts{m->forward(toks.narrow(1, 0, 7), {nullptr, &cache})};
    for (int64_t i = 7; i < p; ++i) parts.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}));
    auto inc = torch::cat(parts, 1);
    const double diff = test::max_abs_diff(full, inc);
    EXPECT_LE(diff, 1e-4) << fam << ": max |dlogit| " << diff;
    EXPECT_EQ(cache.len, p);
  }
}

TEST(TransformerTest, RunsAreBitIdentical) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(12);
    auto toks = torch::randint(0, m->config().d_vocab, {2, 20}, torch::kInt64);
    EXPECT_TRUE(torch::equal(m->forward(toks), m->forward(toks))) << fam;
    std::vector<torch::Tensor> runs;
    for (int r = 0; r < 2; ++r) {
      auto cache = m->make_cache(2);
      std::vector<torch::Tensor> parts;
      for (int64_t i = 0; i < 20; ++i) parts.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}));
      runs.push_back(torch::cat(parts, 1));
    }
    EXPECT_TRUE(torch::equal(runs[0], runs[1])) << fam;
  }
}

TEST(TransformerTest, BatchRowsAreIndependent) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("llama");
  torch::manual_seed(13);
  auto toks = torch::randint(0, 50, {3, 12}, torch::kInt64);
  auto batched = m->forward(toks);
  for (int64_t r = 0; r < 3; ++r)
    EXPECT_LT(test::max_abs_diff(batched[r], m->forward(toks.narrow(0, r, 1))[0]), 1e-5);
}

TEST(TransformerTest, CausalityFutureTokensDoNotMatter) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(14);
    auto a = torch::randint(0, 50, {1, 10}, torch::kInt64);
    auto b = a.clone();
    b[0][9] = (a[0][9].item<int64_t>() + 1) % 50;
    auto la = m->forward(a), lb = m->forward(b);
    EXPECT_LT(test::max_abs_diff(la.narrow(1, 0, 9), lb.narrow(1, 0, 9)), 1e-6) << fam;
    EXPECT_GT(test::max_abs_diff(la.narrow(1, 9, 1), lb.narrow(1, 9, 1)), 1e-4) << fam;
  }
}

TEST(TransformerTest, RejectsBadInputs) {
  auto m = test::tiny_model("gpt2");
  EXPECT_THROW(m->forward(torch::full({1, 3}, 50, torch::kInt64)), Error);      // id == d_vocab
  EXPECT_THROW(m->forward(torch::zeros({1, 65}, torch::kInt64)), Error);         // beyond n_ctx
  auto cache = m->make_cache(2);
  EXPECT_THROW(m->forward(torch::zeros({1, 3}, torch::kInt64), {nullptr, &cache}), Error);  // batch mismatch
}

TEST(ScoreTest, SlidingWindowScoresEveryTokenOnceWithEnoughContext) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt2");
  torch::manual_seed(15);
  auto t = torch::randint(0, 50, {150}, torch::kInt64);
  std::vector<int64_t> toks(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 150);
  auto bits = score_bits(m, toks, {32, 16});
  ASSERT_EQ(bits.size(), 149u);
  // First window: direct forward. Window k: tokens [16k, 16k+32), scores targets 16k+17..16k+31.
  auto logits = m->forward(t.narrow(0, 0, 32).unsqueeze(0))[0];
  auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
  for (int64_t i = 0; i < 31; ++i)
    EXPECT_NEAR(bits[i], -lp[i][toks[i + 1]].item<double>() / std::log(2.0), 1e-5);
  auto w2 = m->forward(t.narrow(0, 16, 32).unsqueeze(0))[0];
  auto lp2 = torch::log_softmax(w2.to(torch::kFloat64), -1);
  // target 32 is predicted in window 1 (start 16) at position 15
  EXPECT_NEAR(bits[31], -lp2[15][toks[32]].item<double>() / std::log(2.0), 1e-5);
  // whole sequence within one window gives the plain forward's bits
  auto short_bits = score_bits(m, std::vector<int64_t>(toks.begin(), toks.begin() + 20));
  for (int64_t i = 0; i < 19; ++i) EXPECT_NEAR(short_bits[i], bits[i], 1e-5);
}

}  // namespace
}  // namespace ccc::model
