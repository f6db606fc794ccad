#include "model/core/config.h"

#include <gtest/gtest.h>

#include "model/base/error.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

TEST(ModelConfigTest, JsonRoundTripKeepsEveryField) {
  for (const char* fam : {"gpt2", "gpt_neox", "llama", "byte_attn_only"}) {
    auto c = test::tiny_config(fam);
    auto back = ModelConfig::from_json(c.to_json());
    EXPECT_EQ(back.to_json(), c.to_json()) << fam;
  }
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
    try {
      c.validate();
      FAIL() << "accepted a config that should fail with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
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
  EXPECT_THROW(
      {
        try {
          ModelConfig::from_json(j);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("n_heads"), std::string::npos);
          throw;
        }
      },
      Error);
  j = test::tiny_config("gpt2").to_json();
  j["d_model"] = "sixteen";
  EXPECT_THROW(ModelConfig::from_json(j), Error);
}

}  // namespace
}  // namespace ccc::model
