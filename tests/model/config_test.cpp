#include "model/core/config.h"

#include <gtest/gtest.h>

#include <set>

#include "model/base/error.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

// Every field survives the JSON round trip, compared with the original values (a field missing from both
// to_json and from_json would pass a to_json-to-to_json comparison): each is set away from its default, and
// the JSON holds exactly the documented keys.
TEST(ModelConfigTest, JsonRoundTripKeepsEveryField) {
  ModelConfig c;
  c.arch = "llama";
  c.d_vocab = 300;
  c.d_vocab_out = 290;
  c.d_model = 48;
  c.n_layers = 3;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.d_head = 8;
  c.d_mlp = 96;
  c.n_ctx = 77;
  c.norm = NormKind::kRMSNorm;
  c.norm_eps = 3e-6;
  c.act = ActKind::kSilu;
  c.pos = PosKind::kRotary;
  c.rotary_dim = 4;
  c.rope_theta = 500000.0;
  c.parallel_attn = true;
  c.gated_mlp = true;
  c.attn_only = false;
  c.tied_embed = true;
  c.attn_bias = false;
  c.mlp_bias = false;
  c.norm_bias = false;
  c.bos_id = 7;
  c.eos_id = 9;
  const auto j = c.to_json();
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  EXPECT_EQ(keys, (std::set<std::string>{"model_type", "arch", "d_vocab", "d_vocab_out", "d_model", "n_layers",
                                         "n_heads", "n_kv_heads", "d_head", "d_mlp", "n_ctx", "norm", "norm_eps",
                                         "act", "pos", "rotary_dim", "rope_theta", "parallel_attn", "gated_mlp",
                                         "attn_only", "tied_embed", "attn_bias", "mlp_bias", "norm_bias", "bos_id",
                                         "eos_id"}));
  const auto b = ModelConfig::from_json(j);
  EXPECT_EQ(b.arch, c.arch);
  EXPECT_EQ(b.d_vocab, c.d_vocab);
  EXPECT_EQ(b.d_vocab_out, c.d_vocab_out);
  EXPECT_EQ(b.d_model, c.d_model);
  EXPECT_EQ(b.n_layers, c.n_layers);
  EXPECT_EQ(b.n_heads, c.n_heads);
  EXPECT_EQ(b.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(b.d_head, c.d_head);
  EXPECT_EQ(b.d_mlp, c.d_mlp);
  EXPECT_EQ(b.n_ctx, c.n_ctx);
  EXPECT_EQ(b.norm, c.norm);
  EXPECT_EQ(b.norm_eps, c.norm_eps);
  EXPECT_EQ(b.act, c.act);
  EXPECT_EQ(b.pos, c.pos);
  EXPECT_EQ(b.rotary_dim, c.rotary_dim);
  EXPECT_EQ(b.rope_theta, c.rope_theta);
  EXPECT_EQ(b.parallel_attn, c.parallel_attn);
  EXPECT_EQ(b.gated_mlp, c.gated_mlp);
  EXPECT_EQ(b.attn_only, c.attn_only);
  EXPECT_EQ(b.tied_embed, c.tied_embed);
  EXPECT_EQ(b.attn_bias, c.attn_bias);
  EXPECT_EQ(b.mlp_bias, c.mlp_bias);
  EXPECT_EQ(b.norm_bias, c.norm_bias);
  EXPECT_EQ(b.bos_id, c.bos_id);
  EXPECT_EQ(b.eos_id, c.eos_id);
  // the tiny family configs too
  for (const char* fam : {"gpt2", "gpt_neox", "llama", "byte_attn_only"}) {
    const auto t = test::tiny_config(fam);
    EXPECT_EQ(ModelConfig::from_json(t.to_json()).n_params(), t.n_params()) << fam;
  }
  // a field of the wrong type is named
  auto bad = j;
  bad["n_heads"] = 2.5;
  test::expect_error([&] { ModelConfig::from_json(bad); }, {"config", "'n_heads'", "must be an integer"});
}

TEST(ModelConfigTest, ParamCountMatchesModule) {
  for (const char* fam : {"gpt2", "gpt_neox", "llama", "byte_attn_only"}) {
    auto c = test::tiny_config(fam);
    Transformer m(c);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(n, c.n_params()) << fam;
  }
}

TEST(ModelConfigTest, RejectsImpossibleShapes) {
  auto expect_error = [](ModelConfig c, const std::string& needle) {
    test::expect_error([&] { c.validate(); }, {needle});
  };
  auto base = test::tiny_config("llama");
  auto c = base;
  c.n_kv_heads = 3;
  expect_error(c, "multiple of n_kv_heads");
  c = base;
  c.rotary_dim = 3;
  expect_error(c, "rotary_dim");
  c = base;
  c.d_model = 0;
  expect_error(c, "d_model");
  c = base;
  c.bos_id = 500;
  expect_error(c, "bos_id");
}

TEST(ModelConfigTest, FromJsonNamesMissingAndMistypedFields) {
  auto j = test::tiny_config("gpt2").to_json();
  j.erase("n_heads");
  test::expect_error([&] { ModelConfig::from_json(j); }, {"n_heads"});
  j = test::tiny_config("gpt2").to_json();
  j["d_model"] = "sixteen";
  EXPECT_THROW(ModelConfig::from_json(j), Error);
}

}  // namespace
}  // namespace ccc::model
