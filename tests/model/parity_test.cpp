// Parity against an independent implementation: tests/support/ref_forward.py writes a tiny random
// checkpoint in Hugging Face layout with its own safetensors writer, and the logits of plain PyTorch
// code following the Hugging Face modeling files. ccc loads the directory and must agree.

#include <gtest/gtest.h>

#include "model/formats/loader.h"
#include "model/core/score.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

class ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityTest, LogitsAndBitsMatchReference) {
  CCC_REQUIRE_PYTHON_TORCH();
  const std::string arch = GetParam();
  test::TempDir tmp;
  const std::string dir = tmp.file(arch);
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " CCC_SOURCE_DIR "/tests/support/ref_forward.py " + arch + " " + dir + " 7",
                              &out),
            0)
      << out;
  auto ref = nlohmann::json::parse(read_file(dir + "/reference.json"));
  auto tokens_v = ref["tokens"].get<std::vector<std::vector<int64_t>>>();
  auto shape = ref["shape"].get<std::vector<int64_t>>();
  auto flat = ref["logits"].get<std::vector<float>>();
  auto ref_logits = torch::from_blob(flat.data(), shape, torch::kFloat32).clone();
  std::vector<int64_t> flat_tokens;
  for (const auto& row : tokens_v) flat_tokens.insert(flat_tokens.end(), row.begin(), row.end());
  auto tokens = torch::tensor(flat_tokens, torch::kInt64).view({shape[0], shape[1]});

  // The tokenizer is irrelevant here; give the byte tokenizer's directory-less path via the HF route.
  auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
  auto cfg = config_from_hf(j, dir + "/config.json");
  const std::string weights = arch == "llama" ? dir + "/model.safetensors.index.json" : dir + "/model.safetensors";
  Transformer m(cfg);
  m->load_state_dict(canonical_from_hf(cfg, load_safetensors_float(weights), weights), weights);
  m->eval();
  torch::NoGradGuard g;
  auto logits = m->forward(tokens);
  const double diff = test::max_abs_diff(logits, ref_logits);
  std::printf("[parity] %s: max |dlogit| full forward %.3g\n", arch.c_str(), diff);
  EXPECT_LE(diff, 1e-4) << arch << ": max |dlogit| = " << diff;
  // the reference logits are far from trivial
  EXPECT_GT(ref_logits.std().item<double>(), 0.1);
  // incremental path agrees with the reference too
  auto cache = m->make_cache(shape[0]);
  std::vector<torch::Tensor> steps;
  for (int64_t i = 0; i < shape[1]; ++i) steps.push_back(m->forward(tokens.narrow(1, i, 1), {nullptr, &cache}));
  EXPECT_LE(test::max_abs_diff(torch::cat(steps, 1), ref_logits), 1e-4) << arch << " (incremental)";
  // per-token bits
  for (int64_t r = 0; r < shape[0]; ++r) {
    auto bits = score_bits(m, tokens_v[r]);
    auto lp = torch::log_softmax(ref_logits[r].to(torch::kFloat64), -1);
    double max_db = 0;
    for (int64_t i = 0; i + 1 < shape[1]; ++i)
      max_db = std::max(max_db, std::abs(bits[i] + lp[i][tokens_v[r][i + 1]].item<double>() / std::log(2.0)));
    EXPECT_LE(max_db, 1e-3) << arch << " row " << r << ": max |dbits| = " << max_db;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ParityTest, ::testing::Values("gpt2", "gpt_neox", "llama"));

}  // namespace
}  // namespace ccc::model
