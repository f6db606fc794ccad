#include "model/core/hooks.h"

#include <gtest/gtest.h>

#include "model/base/error.h"
#include "model/core/transformer.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

const auto& kFamilies = test::kTinyFamilies;

torch::Tensor tokens_for(const Transformer& m, int64_t b, int64_t p, uint64_t seed = 5) {
  return test::random_tokens(m, b, p, seed);
}

TEST(HooksTest, GlobMatch) {
  EXPECT_TRUE(glob_match("blocks.*.attn.hook_z", "blocks.12.attn.hook_z"));
  EXPECT_FALSE(glob_match("blocks.*.attn.hook_z", "blocks.1.attn.hook_q"));
  EXPECT_TRUE(glob_match("*", "hook_embed"));
  EXPECT_TRUE(glob_match("*hook_resid_*", "blocks.0.hook_resid_post"));
  EXPECT_FALSE(glob_match("hook_embed", "hook_pos_embed"));
}

TEST(HooksTest, NoOpEditorEverywhereIsBitIdentical) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    auto toks = tokens_for(m, 2, 9);
    auto ref = m->forward(toks);
    HookSet hooks;
    int64_t calls = 0;
    hooks.edit("*", [&](const torch::Tensor& t, const HookContext&) {
      ++calls;
      return t;
    });
    auto out = m->forward(toks, {&hooks});
    EXPECT_TRUE(torch::equal(ref, out)) << fam << " max diff " << test::max_abs_diff(ref, out);
    EXPECT_GT(calls, 10) << fam;
  }
}

TEST(HooksTest, ObservedShapesMatchListing) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    const int64_t b = 2, p = 5;
    HookSet hooks;
    hooks.cache("*");
    for (const auto& [name, shape] : m->hook_shapes())
      if (name.find("hook_result") != std::string::npos) hooks.cache(name);
    m->forward(tokens_for(m, b, p), {&hooks});
    const auto listing = m->hook_shapes();
    ASSERT_EQ(hooks.cached().size(), listing.size()) << fam;
    for (const auto& [name, shape] : listing) {
      ASSERT_TRUE(hooks.cached().count(name)) << fam << " " << name;
      auto got = hooks.cached().at(name).sizes();
      ASSERT_EQ(got.size(), shape.size()) << name;
      for (size_t i = 0; i < shape.size(); ++i) {
        int64_t want = shape[i] == "batch" ? b : (shape[i] == "pos" || shape[i] == "k_pos") ? p : std::stoll(shape[i]);
        EXPECT_EQ(got[i], want) << fam << " " << name << " dim " << i;
      }
    }
  }
}

TEST(HooksTest, WildcardSkipsOptInResult) {
  auto m = test::tiny_model("gpt2");
  HookSet hooks;
  hooks.cache("*");
  m->forward(tokens_for(m, 1, 3), {&hooks});
  EXPECT_FALSE(hooks.cached().count("blocks.0.attn.hook_result"));
  EXPECT_TRUE(hooks.cached().count("blocks.0.attn.hook_z"));
}

TEST(HooksTest, UnknownExactNameIsAnError) {
  auto m = test::tiny_model("llama");
  HookSet hooks;
  hooks.observe("blocks.0.hook_pos_embed_typo", [](const torch::Tensor&, const HookContext&) {});
  EXPECT_THROW(m->forward(tokens_for(m, 1, 3), {&hooks}), Error);
  HookSet no_pos;
  no_pos.observe("hook_pos_embed", [](const torch::Tensor&, const HookContext&) {});  // rotary model: absent
  EXPECT_THROW(m->forward(tokens_for(m, 1, 3), {&no_pos}), Error);
}

TEST(HooksTest, ResultSumsToAttnOut) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    HookSet hooks;
    hooks.cache("blocks.1.attn.hook_result");
    hooks.cache("blocks.1.hook_attn_out");
    auto toks = tokens_for(m, 2, 6);
    auto with_result = m->forward(toks, {&hooks});
    auto sum = hooks.cached().at("blocks.1.attn.hook_result").sum(2);
    auto attn_out = hooks.cached().at("blocks.1.hook_attn_out");
    auto sd = m->state_dict();
    if (sd.count("blocks.1.attn.b_O")) sum = sum + sd.at("blocks.1.attn.b_O");
    EXPECT_LT(test::max_abs_diff(sum, attn_out), 1e-5) << fam;
    EXPECT_LT(test::max_abs_diff(with_result, m->forward(toks)), 1e-4) << fam;
  }
}

// Zeroing head h of hook_z must change attn_out by exactly -(z_h @ W_O[:, h]^T), nothing else.
TEST(HooksTest, EditingOneHeadOfZChangesOnlyThatHeadsContribution) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    const auto& c = m->config();
    const int64_t head = 2, dh = c.d_head;
    auto toks = tokens_for(m, 2, 7);
    HookSet base;
    base.cache("blocks.0.attn.hook_z");
    base.cache("blocks.0.hook_attn_out");
    m->forward(toks, {&base});
    HookSet edit;
    edit.edit("blocks.0.attn.hook_z", [&](const torch::Tensor& z, const HookContext&) {
      auto y = z.clone();
      y.select(2, head).zero_();
      return y;
    });
    edit.cache("blocks.0.hook_attn_out");
    edit.cache("blocks.0.attn.hook_pattern");
    m->forward(toks, {&edit});
    auto z = base.cached().at("blocks.0.attn.hook_z");
    auto W_O = m->state_dict().at("blocks.0.attn.W_O");                           // [d_model, H*dh]
    auto contrib = torch::matmul(z.select(2, head), W_O.narrow(1, head * dh, dh).t());  // [b, p, d_model]
    auto expected = base.cached().at("blocks.0.hook_attn_out") - contrib;
    EXPECT_LT(test::max_abs_diff(edit.cached().at("blocks.0.hook_attn_out"), expected), 1e-5) << fam;
    EXPECT_GT(contrib.abs().max().item<double>(), 1e-3) << fam << ": head contributes nothing, test is vacuous";
  }
}

// Editing hook_scale re-normalises with the edited scale: doubling it halves (normalized - bias).
TEST(HooksTest, EditingLayerNormScaleRescalesTheOutput) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt2");
  auto toks = tokens_for(m, 1, 5);
  HookSet base;
  base.cache("blocks.0.ln1.hook_normalized");
  m->forward(toks, {&base});
  HookSet edit;
  edit.edit("blocks.0.ln1.hook_scale", [](const torch::Tensor& s, const HookContext&) { return s * 2.0; });
  edit.cache("blocks.0.ln1.hook_normalized");
  m->forward(toks, {&edit});
  auto b = m->state_dict().at("blocks.0.ln1.b");
  auto want = (base.cached().at("blocks.0.ln1.hook_normalized") - b) / 2.0 + b;
  EXPECT_LT(test::max_abs_diff(edit.cached().at("blocks.0.ln1.hook_normalized"), want), 1e-5);
}

TEST(HooksTest, PerRowEditorsTouchOnlyTheirRows) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt2");
  auto one = tokens_for(m, 1, 8);
  auto toks = one.repeat({4, 1});
  auto ref = m->forward(toks);
  HookSet hooks;
  auto zero_head = [](int64_t head) {
    return [head](const torch::Tensor& z, const HookContext& ctx) {
      EXPECT_NE(ctx.rows, nullptr);
      auto y = z.clone();
      y.select(2, head).zero_();
      return y;
    };
  };
  hooks.edit("blocks.0.attn.hook_z", zero_head(0), {1});
  hooks.edit("blocks.0.attn.hook_z", zero_head(3), {2, 3});
  auto out = m->forward(toks, {&hooks});
  EXPECT_TRUE(torch::equal(out[0], ref[0]));
  EXPECT_GT((out[1] - ref[1]).abs().max().item<double>(), 1e-4);
  EXPECT_GT((out[2] - out[1]).abs().max().item<double>(), 1e-4);  // different edits differ
  EXPECT_LT(test::max_abs_diff(out[2], out[3]), 1e-5);  // same edit, same tokens
  // Row 1 equals a forward of that sequence alone with the same edit on all rows.
  HookSet single;
  single.edit("blocks.0.attn.hook_z", zero_head(0), {0});
  auto alone = m->forward(one, {&single});
  EXPECT_LT(test::max_abs_diff(alone[0], out[1]), 1e-5);
}

TEST(HooksTest, IncrementalPathReportsAbsolutePositions) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("llama");
  auto toks = tokens_for(m, 2, 6);
  auto cache = m->make_cache(2);
  std::vector<int64_t> offsets;
  std::vector<int64_t> kpos;
  HookSet hooks;
  hooks.observe("blocks.1.attn.hook_pattern", [&](const torch::Tensor& t, const HookContext& ctx) {
    offsets.push_back(ctx.pos_offset);
    kpos.push_back(t.size(3));
    EXPECT_EQ(ctx.layer, 1);
  });
  m->forward(toks.narrow(1, 0, 4), {&hooks, &cache});
  m->forward(toks.narrow(1, 4, 1), {&hooks, &cache});
  m->forward(toks.narrow(1, 5, 1), {&hooks, &cache});
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 4, 5}));
  EXPECT_EQ(kpos, (std::vector<int64_t>{4, 5, 6}));
}

TEST(HooksTest, EditorOnIncrementalPathMatchesFullForwardEdit) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt_neox");
  auto toks = tokens_for(m, 1, 6);
  auto scale_resid = [](const torch::Tensor& x, const HookContext&) { return x * 0.5; };
  HookSet full_hooks;
  full_hooks.edit("blocks.0.hook_resid_mid*", scale_resid);  // absent in parallel blocks: wildcard matches none
  full_hooks.edit("blocks.1.hook_resid_pre", scale_resid);
  auto full = m->forward(toks, {&full_hooks});
  auto cache = m->make_cache(1);
  std::vector<torch::Tensor> steps;
  for (int64_t i = 0; i < 6; ++i) steps.push_back(m->forward(toks.narrow(1, i, 1), {&full_hooks, &cache}));
  EXPECT_LT(test::max_abs_diff(torch::cat(steps, 1), full), 1e-4);
  EXPECT_GT(test::max_abs_diff(full, m->forward(toks)), 1e-3);
}

}  // namespace
}  // namespace ccc::model
