#include "model/formats/loader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "model/base/error.h"
#include "model/core/score.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

using test::expect_error;

TEST(Stories260KTest, GreedyOutputMatchesLlama2c) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  auto m = load_model(bin, test::shared_path("models/tok512.bin"));
  // llama2.c `run stories260K.bin -z tok512.bin -t 0 -n 120`: 120 steps from BOS.
  GenerateOptions opt;
  opt.max_new_tokens = 120;
  opt.stop_id = 1;
  auto out = generate(m.model, {1}, opt);
  const std::string expected =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
      "big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the "
      "park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but";
  EXPECT_EQ(m.tokenizer->decode(out), expected);
}

TEST(Stories260KTest, GreedyContinuationOfPromptMatchesLlama2c) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  auto m = load_model(bin, test::shared_path("models/tok512.bin"));
  const std::string prompt = "Once upon a time, Lily found a";
  std::vector<int64_t> ids{1};
  auto enc = m.tokenizer->encode(prompt);
  ids.insert(ids.end(), enc.begin(), enc.end());
  GenerateOptions opt;
  opt.max_new_tokens = 120 - static_cast<int64_t>(ids.size()) + 1;
  opt.stop_id = 1;
  auto out = generate(m.model, ids, opt);
  std::vector<int64_t> all(enc);
  all.insert(all.end(), out.begin(), out.end());
  const std::string text = m.tokenizer->decode(all);
  const std::string expected = prompt +
      " big, red ball. She was very happy and wanted to play with it. She wanted to play with her ball, but she "
      "didn't want to play with it.";
  EXPECT_EQ(text.substr(0, expected.size()), expected);
}

TEST(Stories260KTest, PerTokenBitsMatchLlama2cReference) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  auto m = load_model(bin, test::shared_path("models/tok512.bin"));
  std::istringstream ref(read_file(test::shared_path("models/stories260K-score-example.ref")));
  std::string line, word;
  std::getline(ref, line);
  std::istringstream tl(line);
  tl >> word;
  std::vector<int64_t> tokens;
  int64_t id;
  while (tl >> id) tokens.push_back(id);
  std::vector<double> ref_bits;
  double total = 0;
  while (std::getline(ref, line)) {
    std::istringstream ls(line);
    ls >> word;
    if (word == "bits") {
      int64_t pos;
      double b;
      ls >> pos >> b;
      ASSERT_EQ(pos, static_cast<int64_t>(ref_bits.size()));
      ref_bits.push_back(b);
    } else if (word == "total_bits") {
      ls >> total;
    }
  }
  auto bits = score_bits(m.model, tokens);
  ASSERT_EQ(bits.size(), ref_bits.size());
  double max_diff = 0, sum = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(bits[i] - ref_bits[i]));
    sum += bits[i];
  }
  EXPECT_LT(max_diff, 1e-4) << "max |dbits| vs llama2.c";
  EXPECT_NEAR(sum, total, 1e-3);
}

TEST(LoaderTest, CccModelRoundTripAndFingerprint) {
  test::TempDir tmp;
  auto m = test::tiny_model("byte_attn_only");
  const auto cfg = m->config();
  save_model(tmp.file("m"), cfg, m);
  auto loaded = load_model(tmp.file("m"));
  EXPECT_EQ(loaded.format, "ccc");
  EXPECT_EQ(loaded.tokenizer->kind(), "byte");
  auto sd = m->state_dict(), sd2 = loaded.model->state_dict();
  for (const auto& [k, v] : sd) EXPECT_TRUE(torch::equal(v, sd2.at(k))) << k;
  EXPECT_EQ(loaded.fingerprint, model_fingerprint(cfg, m, ByteTokenizer()));
  EXPECT_EQ(loaded.fingerprint.size(), 64u);
  // any weight change changes the fingerprint
  {
    torch::NoGradGuard g;
    m->state_dict().at("blocks.0.attn.W_O")[0][0] += 1e-3;
  }
  EXPECT_NE(loaded.fingerprint, model_fingerprint(cfg, m, ByteTokenizer()));
  // no temporary files left behind
  for (const auto& e : std::filesystem::directory_iterator(tmp.file("m")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(LoaderTest, SavedSafetensorsReadableByPython) {
  CCC_REQUIRE_PYTHON_TORCH();
  test::TempDir tmp;
  auto m = test::tiny_model("llama");
  save_model(tmp.file("m"), m->config(), m, SaveDtype::kBF16);
  // Plain Python: parse the header with json, read one tensor with torch.frombuffer.
  const std::string script =
      "import json,struct,sys,torch\n"
      "b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n])\n"
      "e=h['blocks.1.attn.W_O']; s,t=e['data_offsets']\n"
      "x=torch.frombuffer(bytearray(b[8+n+s:8+n+t]),dtype=torch.bfloat16).float().reshape(e['shape'])\n"
      "print(e['dtype'], h['__metadata__']['format'], ' '.join('%.9g'%v for v in x.flatten()[:5].tolist()))\n";
  write_file_atomic(tmp.file("read.py"), script);
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + tmp.file("read.py") + " " + tmp.file("m/model.safetensors"), &out), 0)
      << out;
  auto w = m->state_dict().at("blocks.1.attn.W_O").to(torch::kBFloat16).to(torch::kFloat32).flatten();
  std::ostringstream want;
  want << "BF16 pt";
  char buf[32];
  for (int i = 0; i < 5; ++i) {
    std::snprintf(buf, sizeof buf, " %.9g", w[i].item<float>());
    want << buf;
  }
  EXPECT_EQ(out, want.str() + "\n");
}

class HfLoaderTest : public ::testing::Test {
 protected:
  // A GPT-2 HF directory written from a tiny canonical model (Conv1D layout), optionally prefixed.
  void write_gpt2(const std::string& dir, const std::string& prefix, bool legacy = true) {
    auto m = test::tiny_model("gpt2");
    const auto& c = m->config();
    auto sd = m->state_dict();
    std::map<std::string, torch::Tensor> hf;
    hf[prefix + "wte.weight"] = sd["embed.W_E"];
    hf[prefix + "wpe.weight"] = sd["pos_embed.W_pos"];
    for (int l = 0; l < c.n_layers; ++l) {
      std::string b = "blocks." + std::to_string(l) + ".", h = prefix + "h." + std::to_string(l) + ".";
      hf[h + "ln_1.weight"] = sd[b + "ln1.w"];
      hf[h + "ln_1.bias"] = sd[b + "ln1.b"];
      hf[h + "attn.c_attn.weight"] = sd[b + "attn.W_qkv"].t();
      hf[h + "attn.c_attn.bias"] = sd[b + "attn.b_qkv"];
      hf[h + "attn.c_proj.weight"] = sd[b + "attn.W_O"].t();
      hf[h + "attn.c_proj.bias"] = sd[b + "attn.b_O"];
      hf[h + "ln_2.weight"] = sd[b + "ln2.w"];
      hf[h + "ln_2.bias"] = sd[b + "ln2.b"];
      hf[h + "mlp.c_fc.weight"] = sd[b + "mlp.W_in"].t();
      hf[h + "mlp.c_fc.bias"] = sd[b + "mlp.b_in"];
      hf[h + "mlp.c_proj.weight"] = sd[b + "mlp.W_out"].t();
      hf[h + "mlp.c_proj.bias"] = sd[b + "mlp.b_out"];
      if (legacy) {
        hf[h + "attn.bias"] = torch::ones({1, 1, 4, 4});
        hf[h + "attn.masked_bias"] = torch::ones({});
      }
    }
    hf[prefix + "ln_f.weight"] = sd["ln_final.w"];
    hf[prefix + "ln_f.bias"] = sd["ln_final.b"];
    std::filesystem::create_directories(dir);
    safetensors_save(dir + "/model.safetensors", hf);
    write_file_atomic(dir + "/config.json", config_json().dump());
    // a byte-level tokenizer.json with the tiny vocabulary is not needed: tests pass --tokenizer
    ref_ = m;
  }
  nlohmann::json config_json() {
    const auto c = test::tiny_config("gpt2");
    return {{"model_type", "gpt2"}, {"n_embd", c.d_model}, {"n_layer", c.n_layers}, {"n_head", c.n_heads},
            {"n_positions", c.n_ctx}, {"vocab_size", c.d_vocab}, {"n_inner", c.d_mlp}, {"bos_token_id", 49},
            {"eos_token_id", 49}};
  }
  std::string tokenizer() { return test::shared_path("tokenizers/gpt2"); }
  LoadedModel load(const std::string& dir) {
    // vocab of the tiny model is 50; the GPT-2 tokenizer is too large for it, so load weights directly
    auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
    auto cfg = config_from_hf(j, dir + "/config.json");
    auto sd = canonical_from_hf(cfg, load_safetensors_float(dir + "/model.safetensors"), dir);
    LoadedModel m;
    m.config = cfg;
    m.model = Transformer(cfg);
    m.model->load_state_dict(sd, dir);
    return m;
  }
  Transformer ref_{nullptr};
};

TEST_F(HfLoaderTest, AcceptsBothKeyLayoutsAndIgnoresLegacyBuffers) {
  test::TempDir tmp;
  torch::NoGradGuard g;
  auto toks = torch::randint(0, 50, {1, 9}, torch::kInt64);
  for (std::string prefix : {"", "transformer."}) {
    write_gpt2(tmp.file("gpt2" + prefix), prefix);
    auto m = load(tmp.file("gpt2" + prefix));
    EXPECT_TRUE(torch::equal(m.model->forward(toks), ref_->forward(toks))) << "prefix '" << prefix << "'";
  }
}

TEST_F(HfLoaderTest, UnknownOrMissingTensorIsNamed) {
  test::TempDir tmp;
  write_gpt2(tmp.file("a"), "");
  auto sd = load_safetensors_float(tmp.file("a/model.safetensors"));
  auto cfg = config_from_hf(config_json(), "config.json");
  auto extra = sd;
  extra["h.0.attn.surprise"] = torch::zeros({2});
  expect_error([&] { canonical_from_hf(cfg, extra, "x.safetensors"); }, {"x.safetensors", "h.0.attn.surprise"});
  auto missing = sd;
  missing.erase("h.1.mlp.c_fc.bias");
  expect_error([&] { canonical_from_hf(cfg, missing, "x.safetensors"); }, {"missing tensor", "h.1.mlp.c_fc.bias"});
  auto wrong = sd;
  wrong["h.0.ln_1.weight"] = torch::zeros({3});
  expect_error([&] { canonical_from_hf(cfg, wrong, "x.safetensors"); }, {"h.0.ln_1.weight", "shape"});
}

TEST_F(HfLoaderTest, WrongConfigFieldsAreClearErrors) {
  auto j = config_json();
  j.erase("n_head");
  expect_error([&] { config_from_hf(j, "cfg.json"); }, {"cfg.json", "n_head"});
  j = config_json();
  j["n_embd"] = "16";
  expect_error([&] { config_from_hf(j, "cfg.json"); }, {"cfg.json", "n_embd", "integer"});
  j = config_json();
  j["n_head"] = 3;
  expect_error([&] { config_from_hf(j, "cfg.json"); }, {"cfg.json", "multiple"});
  j = config_json();
  j["model_type"] = "bert";
  expect_error([&] { config_from_hf(j, "cfg.json"); }, {"cfg.json", "bert"});
  j = config_json();
  j["activation_function"] = "swoosh";
  expect_error([&] { config_from_hf(j, "cfg.json"); }, {"swoosh"});
}

TEST_F(HfLoaderTest, MissingFilesAreClearErrors) {
  test::TempDir tmp;
  expect_error([&] { load_model(tmp.file("nope")); }, {"nope", "does not exist"});
  std::filesystem::create_directories(tmp.file("empty"));
  expect_error([&] { load_model(tmp.file("empty")); }, {"config.json"});
  write_gpt2(tmp.file("g"), "");
  std::filesystem::remove(tmp.file("g/model.safetensors"));
  expect_error([&] { load_model(tmp.file("g")); }, {"model.safetensors"});
}

TEST(Llama2cLoaderTest, TruncatedCheckpointIsAClearError) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  test::TempDir tmp;
  auto bytes = read_file(bin);
  write_file_atomic(tmp.file("t.bin"), bytes.substr(0, bytes.size() - 100));
  expect_error([&] { load_model(tmp.file("t.bin"), test::shared_path("models/tok512.bin")); }, {"t.bin", "truncated"});
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// Hardening: a config is checked against caps and against the weights before anything is built; model
// files must be regular files; weights must be finite; GGUF is named.
TEST(LoaderHardeningTest, InflatedConfigsAndBadWeightsAreRefusedBeforeBuilding) {
  test::TempDir tmp;
  auto m = test::tiny_model("byte_attn_only");
  save_model(tmp.file("m"), m->config(), m);
  const std::string cfg_path = tmp.file("m/config.json");
  const auto original = nlohmann::json::parse(read_file(cfg_path));
  auto with = [&](const char* key, int64_t v) {
    auto j = original;
    j[key] = v;
    write_file_atomic(cfg_path, j.dump());
  };
  with("d_model", 200000);
  expect_error([&] { load_model(tmp.file("m")); }, {"config.json", "d_model = 200000 exceeds"});
  with("n_layers", 1000000);
  expect_error([&] { load_model(tmp.file("m")); }, {"config.json", "n_layers"});
  with("n_ctx", int64_t{4000000});
  expect_error([&] { load_model(tmp.file("m")); }, {"n_ctx"});
  // within the caps but not what the weights hold: refused by parameter count, nothing allocated
  with("d_mlp", 60000);
  auto j = original;
  j["n_layers"] = original["n_layers"].get<int64_t>() + 7;
  write_file_atomic(cfg_path, j.dump());
  expect_error([&] { load_model(tmp.file("m")); }, {"config.json", "parameters", "model.safetensors", "holds"});
  write_file_atomic(cfg_path, original.dump());
  EXPECT_NO_THROW(load_model(tmp.file("m")));
  // a non-finite weight is named
  {
    torch::NoGradGuard g;
    m->state_dict().at("blocks.0.attn.W_O")[1][2] = std::numeric_limits<float>::quiet_NaN();
  }
  save_model(tmp.file("nan"), m->config(), m);
  expect_error([&] { load_model(tmp.file("nan")); }, {"model.safetensors", "blocks.0.attn.W_O", "NaN"});
  // weights that are a device, not a file
  std::filesystem::create_directories(tmp.file("dev"));
  std::filesystem::copy_file(cfg_path, tmp.file("dev/config.json"));
  std::filesystem::create_symlink("/dev/zero", tmp.file("dev/model.safetensors"));
  expect_error([&] { load_model(tmp.file("dev")); }, {"model.safetensors", "not a regular file"});
  // GGUF
  write_file_atomic(tmp.file("x.gguf"), std::string("GGUF\x03\0\0\0", 8) + std::string(64, '\0'));
  expect_error([&] { load_model(tmp.file("x.gguf")); }, {"x.gguf", "GGUF is not supported"});
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// A weight declared with an integer dtype (here I32 in place of F32, same byte size) is refused with the
// tensor named, not cast silently.
TEST(LoaderHardeningTest, IntegerWeightsAreRefused) {
  test::TempDir tmp;
  auto lm = test::tiny_byte_lm(2);
  save_model(tmp.file("m"), lm.config, lm.model);
  std::string bytes = read_file(tmp.file("m/model.safetensors"));
  const size_t at = bytes.find("\"F32\"");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] = 'I';
  write_file_atomic(tmp.file("m/model.safetensors"), bytes);
  test::expect_error([&] { load_model(tmp.file("m")); }, {"integer dtype", "model.safetensors"});
}

}  // namespace
}  // namespace ccc::model

