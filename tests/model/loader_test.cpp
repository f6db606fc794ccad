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

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning '" << needles.front() << "'";
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

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

TEST(CliTest, BitsJsonHasTheDocumentedFields) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  std::string out;
  const std::string cmd = std::string(CCC_BINARY) + " bits --json -m " + bin + " -t " +
                          test::shared_path("models/tok512.bin") + " " +
                          test::shared_path("models/stories260K-score-example.txt");
  ASSERT_EQ(test::run_command(cmd + " 2>/dev/null", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  auto tokens = j.at("tokens").get<std::vector<int64_t>>();
  auto bits = j.at("bits").get<std::vector<double>>();
  EXPECT_EQ(tokens.front(), 1);
  EXPECT_EQ(bits.size(), tokens.size() - 1);
  double sum = 0;
  for (double b : bits) sum += b;
  EXPECT_NEAR(j.at("total_bits").get<double>(), sum, 1e-9);
  EXPECT_EQ(j.at("n_bytes").get<int64_t>(), 126);
  EXPECT_NEAR(j.at("bits_per_byte").get<double>(), sum / 126, 1e-12);
  EXPECT_NEAR(sum, 20.573389, 1e-3);
  EXPECT_EQ(j.at("schema").get<std::string>(), "ccc.bits/1");
  EXPECT_EQ(j.at("ccc_version").get<std::string>().rfind("0.", 0), 0u);
  EXPECT_EQ(j.at("tokenizer").get<std::string>(), "llama2c-bpe");
}

TEST(CliTest, BadModelGivesErrorAndNonZeroExit) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("x.txt"), "hi");
  std::string out;
  int rc = test::run_command(std::string(CCC_BINARY) + " bits -m " + tmp.file("missing") + " " + tmp.file("x.txt"), &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error:"), std::string::npos) << out;
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
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

TEST(CliTest, NonsenseNumbersFailedWritesAndSelfOverwritesAreErrors) {
  test::TempDir tmp;
  const std::string ccc = CCC_BINARY, model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  std::string out;
  EXPECT_NE(test::run_command(ccc + " --threads 100000 info -m " + model + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--threads 100000"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(ccc + " info -m " + model + " --threads 1 > /dev/null 2>&1"), 0);  // after the subcommand too
  EXPECT_NE(test::run_command("(" + ccc + " info -m " + model + " > /dev/full)", &out), 0);
  EXPECT_NE(out.find("cannot write to standard output"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + " compress --streams -3 " + model + "/config.json -o " + tmp.file("x") + " 2>/dev/null"), 0);
  write_file_atomic(tmp.file("a.txt"), "hello hello hello\n");
  ASSERT_EQ(test::run_command(ccc + " compress -q -m " + model + " " + tmp.file("a.txt")), 0);
  const std::string packed = read_file(tmp.file("a.txt.ccc"));
  EXPECT_NE(test::run_command(ccc + " decompress -m " + model + " " + tmp.file("a.txt.ccc") + " -o " + tmp.file("a.txt.ccc") +
                                  " --force 2>&1", &out), 0);
  EXPECT_NE(out.find("would overwrite the input"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("a.txt.ccc")), packed);
  // --version names the build; a bare ccc prints the help; bits --streams --json is JSON with per-stream bits
  ASSERT_EQ(test::run_command(ccc + " --version", &out), 0);
  EXPECT_EQ(out.rfind("ccc 0.", 0), 0u) << out;
  EXPECT_NE(out.find("libtorch"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc, &out), 0);
  EXPECT_NE(out.find("Usage: ccc"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc + " bits -m " + model + " --streams 2 --json " + tmp.file("a.txt") + " 2>/dev/null", &out), 0);
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["bits"].size(), 2u);
  double sum = 0;
  size_t tokens = 0;
  for (const auto& s : j["bits"])
    for (const auto& b : s) sum += b.get<double>(), ++tokens;
  EXPECT_EQ(tokens, 18u);  // byte model: one coded token per byte
  EXPECT_NEAR(sum, j["total_bits"].get<double>(), 1e-6);
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// gzip / xz / zstd habits: several inputs, -c, -d, -t, -l, '-' both ways, the model found from the hint.
TEST(CliTest, CompressorConventions) {
  test::TempDir tmp;
  const std::string ccc = CCC_BINARY, m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  const std::string a = tmp.file("a.txt"), b = tmp.file("b.txt");
  write_file_atomic(a, "first file\n");
  write_file_atomic(b, "second file, longer\n");
  std::string out;
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + a + " " + b, &out), 0) << out;
  ASSERT_TRUE(std::filesystem::exists(a + ".ccc") && std::filesystem::exists(b + ".ccc"));
  EXPECT_TRUE(std::filesystem::exists(a));  // inputs are kept
  EXPECT_NE(test::run_command(ccc + " compress -q" + m + " " + a + " " + b + " -o " + tmp.file("x")), 0);  // -o: one input
  ASSERT_EQ(test::run_command(ccc + " decompress -t " + a + ".ccc " + b + ".ccc", &out), 0) << out;  // model from the hint
  EXPECT_NE(out.find("a.txt.ccc: OK"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc + " compress -l " + b + ".ccc", &out), 0) << out;
  EXPECT_NE(out.find("original 20 bytes"), std::string::npos) << out;
  EXPECT_NE(out.find("model ccc-attn1 "), std::string::npos) << out;  // a name, not a path
  ASSERT_EQ(test::run_command(ccc + " compress -d -c -q " + a + ".ccc 2>/dev/null", &out), 0);
  EXPECT_EQ(out, "first file\n");
  ASSERT_EQ(test::run_command("cat " + b + " | " + ccc + " compress -q" + m + " - | " + ccc + " decompress -q - 2>/dev/null", &out), 0);
  EXPECT_EQ(out, "second file, longer\n");
  // the default group count is a constant (8), not the machine's core count
  std::string big;
  for (int i = 0; big.size() < 10240; ++i) big += "line " + std::to_string(i) + "\n";
  write_file_atomic(tmp.file("big.txt"), big);
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + tmp.file("big.txt") + " && " + ccc + " compress -l " +
                                  tmp.file("big.txt.ccc"), &out), 0) << out;
  EXPECT_NE(out.find("in 10 streams, 8 groups"), std::string::npos) << out;
  write_file_atomic(tmp.file("e.txt"), "");
  ASSERT_EQ(test::run_command(ccc + " compress" + m + " " + tmp.file("e.txt"), &out), 0);
  EXPECT_NE(out.find("empty input"), std::string::npos) << out;
  // a container whose model is neither the default nor a shipped one names the fingerprint it needs
  write_file_atomic(tmp.file("c.ccc"), read_file(a + ".ccc"));
  EXPECT_NE(test::run_command(ccc + " decompress -c -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                                  tmp.file("c.ccc"), &out), 0);
  EXPECT_NE(out.find("fingerprint"), std::string::npos) << out;
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// Long commands draw a progress line on a terminal and stay quiet otherwise (and with -q).
TEST(CliTest, ProgressOnlyOnATerminal) {
  test::TempDir tmp;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat " + std::to_string(i) + "\n";
  write_file_atomic(tmp.file("t.txt"), text);
  const std::string cmd = std::string(CCC_BINARY) + " sweep --naive -m " + std::string(CCC_SOURCE_DIR) +
                          "/data/models/ccc-attn2 " + tmp.file("t.txt");
  std::string out;
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out;
  EXPECT_EQ(out.find("ablations:"), std::string::npos) << "progress written to a pipe";
  if (test::run_command("command -v script >/dev/null") != 0) GTEST_SKIP() << "no script(1) to make a terminal";
  ASSERT_EQ(test::run_command("script -qec '" + cmd + "' /dev/null", &out), 0) << out;
  EXPECT_NE(out.find("ablations: 8/8 (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + cmd + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("ablations:"), std::string::npos) << out;
  const std::string bits = std::string(CCC_BINARY) + " bits -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                           tmp.file("t.txt");
  ASSERT_EQ(test::run_command("script -qec '" + bits + "' /dev/null", &out), 0) << out;
  // (a byte-level model's input streams: progress counts its bytes, i.e. the coded tokens)
  EXPECT_NE(out.find("bits: " + std::to_string(text.size()) + "/" + std::to_string(text.size()) + " (100%)"),
            std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + bits + " --streams 3' /dev/null", &out), 0) << out;
  EXPECT_NE(out.find("bits: " + std::to_string(text.size()) + "/" + std::to_string(text.size()) + " (100%)"),
            std::string::npos) << out;
  // ablate: one line per scoring (clean, then ablated), in coded tokens
  const std::string ablate = std::string(CCC_BINARY) + " ablate -c 1.2 -m " + std::string(CCC_SOURCE_DIR) +
                             "/data/models/ccc-attn2 " + tmp.file("t.txt");
  ASSERT_EQ(test::run_command("script -qec '" + ablate + "' /dev/null", &out), 0) << out;
  const std::string n = std::to_string(text.size());
  EXPECT_NE(out.find("ablate: clean run: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  EXPECT_NE(out.find("ablate: ablated run: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + ablate + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("ablate:"), std::string::npos) << out;
}

// ccc patch end to end: the JSON of the README, delta = patched − clean, and a path that does not run
// downstream refused naming the receiver.
TEST(CliTest, PatchJsonAndRefusedPaths) {
  test::TempDir tmp;
  std::string text;
  for (int i = 0; i < 8; ++i) {
    std::string r;
    for (int k = 0; k < 40; ++k) r += static_cast<char>(33 + (i * 37 + k * k * 11) % 90);
    text += r + r;
  }
  write_file_atomic(tmp.file("rep.txt"), text);
  const std::string cmd = std::string(CCC_BINARY) + " patch -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                          tmp.file("rep.txt");
  std::string out;
  ASSERT_EQ(test::run_command(cmd + " --sender 0.2 --receiver 1.2 --json 2>/dev/null", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j.at("sender"), "0.2");
  EXPECT_EQ(j.at("receiver"), "1.2");
  EXPECT_EQ(j.at("n_bytes").get<int64_t>(), static_cast<int64_t>(text.size()));
  EXPECT_NEAR(j.at("delta_bits").get<double>(),
              j.at("patched_total_bits").get<double>() - j.at("clean_total_bits").get<double>(), 1e-6);
  EXPECT_NEAR(j.at("delta_bits_per_byte").get<double>(), j.at("delta_bits").get<double>() / text.size(), 1e-9);
  EXPECT_LE(j.at("ci_low").get<double>(), j.at("delta_bits_per_byte").get<double>());
  EXPECT_GE(j.at("ci_high").get<double>(), j.at("delta_bits_per_byte").get<double>());
  EXPECT_FALSE(j.contains("ablated_total_bits"));
  EXPECT_NE(test::run_command(cmd + " --sender 1.2 --receiver 0.1 2>&1", &out), 0);
  EXPECT_NE(out.find("receiver '0.1' is not downstream of sender '1.2'"), std::string::npos) << out;
  // progress on a terminal only, counting the coded tokens (one per byte); -q silences it
  if (test::run_command("command -v script >/dev/null") != 0) GTEST_SKIP() << "no script(1) to make a terminal";
  const std::string loud = std::string(CCC_BINARY) + " patch -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                           tmp.file("rep.txt") + " --sender 0.2";
  ASSERT_EQ(test::run_command("script -qec '" + loud + "' /dev/null", &out), 0) << out;
  const std::string n = std::to_string(text.size());
  EXPECT_NE(out.find("patch: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + loud + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("patch:"), std::string::npos) << out;
}

// bits --json lines each coded token up with its bytes; a model whose activations overflow gives an error
// naming the token, never "nan" as a result.
TEST(CliTest, BitsJsonSpansAndNoNaNResults) {
  test::TempDir tmp;
  const std::string text = "tab\there \xff caf\xc3\xa9\n";
  write_file_atomic(tmp.file("t.txt"), text);
  std::string out;
  const std::string ccc = CCC_BINARY;
  ASSERT_EQ(test::run_command(ccc + " bits --json -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                                  tmp.file("t.txt") + " 2>/dev/null", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["spans"].size(), text.size());
  ASSERT_EQ(j["n_coded_tokens"].get<size_t>(), j["bits"].size());
  std::string joined;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto a = j["spans"][i][0].get<int64_t>(), b = j["spans"][i][1].get<int64_t>();
    joined += text.substr(a, b - a);
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(j["token_text"][3].get<std::string>(), "\\t");
  EXPECT_EQ(j["token_text"][9].get<std::string>(), "\\xff");
  EXPECT_EQ(j["tokenizer"].get<std::string>(), "byte");
  // finite weights, overflowing activations: every parameter scaled to 1e36
  auto lm = test::tiny_byte_lm(3);
  {
    torch::NoGradGuard ng;
    for (auto& p : lm.model->parameters()) p.mul_(1e36);
  }
  save_model(tmp.file("overflow"), lm.config, lm.model);
  EXPECT_NE(test::run_command(ccc + " bits -m " + tmp.file("overflow") + " " + tmp.file("t.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("non-finite cost"), std::string::npos) << out;
  EXPECT_EQ(out.find("bits_per_byte"), std::string::npos) << out;
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// Outputs: FIFOs and character devices are written into, never replaced; names of 250 bytes work (the
// temporary fits); temporaries of dead writers are removed, a live writer's are kept.
TEST(CliTest, SpecialOutputsLongNamesAndStaleTemporaries) {
  test::TempDir tmp;
  const std::string ccc = CCC_BINARY, m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  const std::string a = tmp.file("a.txt");
  write_file_atomic(a, "special outputs\n");
  const std::string fifo = tmp.file("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  std::string out;
  ASSERT_EQ(test::run_command("(cat " + fifo + " > " + tmp.file("got") + " &) ; " + ccc + " compress -q" + m + " " + a +
                                  " -o " + fifo + " && " + ccc + " compress -q" + m + " " + a + " -o " +
                                  tmp.file("ref.ccc") + " && sleep 0.2", &out), 0) << out;
  struct stat st{};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // still a FIFO, and what came through it is the container
  EXPECT_EQ(read_file(tmp.file("got")), read_file(tmp.file("ref.ccc")));
  ASSERT_EQ(test::run_command(ccc + " compress -q -f" + m + " " + a + " -o /dev/null", &out), 0) << out;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_NE(test::run_command(ccc + " compress -q" + m + " " + a + " -o " + tmp.path() + " 2>&1", &out), 0);
  EXPECT_NE(out.find("is a directory"), std::string::npos) << out;
  const std::string longname = tmp.file(std::string(250, 'x'));
  write_file_atomic(longname, "a legal name of 250 bytes\n");
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + longname + " && " + ccc + " decompress -c " + longname +
                                  ".ccc 2>/dev/null", &out), 0) << out;
  EXPECT_EQ(out, "a legal name of 250 bytes\n");
  EXPECT_LE(std::filesystem::path(temp_path_for(longname + ".ccc")).filename().string().size(), 255u);
  // A writer killed mid-write (pid gone) left a temporary; one of this (live) process must stay.
  const std::string target = tmp.file("t.bin");
  std::string dead = temp_path_for(target);
  const pid_t gone = 4194304 + 7;  // above Linux's pid_max limit: never a live process
  dead.replace(dead.rfind("~ccc") + 4, dead.rfind('-') - dead.rfind("~ccc") - 4, std::to_string(gone));
  const std::string live = temp_path_for(target);
  write_file_atomic(tmp.file("d"), "x");
  std::filesystem::copy_file(tmp.file("d"), dead);
  std::filesystem::copy_file(tmp.file("d"), live);
  write_file_atomic(target, "final");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_EQ(read_file(target), "final");
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) entries += e.path().filename().string()[0] == '.';
  EXPECT_EQ(entries, 1u);  // only the live one: write_file_atomic leaves no temporary of its own
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// `cmake --install` (what setup.sh runs) gives a `ccc` that works from anywhere: the launcher finds
// ccc-core beside it, and the version it prints is the build's.
TEST(CliTest, InstalledLauncherRunsTheCore) {
  test::TempDir tmp;
  const auto build_dir = std::filesystem::path(CCC_BINARY).parent_path().parent_path();
  std::string out;
  ASSERT_EQ(test::run_command("cmake --install " + build_dir.string() + " --prefix " + tmp.path() + " 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command("cd / && " + tmp.file("bin/ccc") + " --version", &out), 0) << out;
  std::string direct;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " --version", &direct), 0);
  EXPECT_EQ(out, direct);
  EXPECT_EQ(out.rfind("ccc 0.", 0), 0u) << out;
  std::filesystem::remove(tmp.file("bin/ccc-core"));
  EXPECT_EQ(test::run_command(tmp.file("bin/ccc") + " --version 2>&1", &out), 127);
  EXPECT_NE(out.find("cannot run"), std::string::npos) << out;
  // help pages come from the launcher alone (no ccc-core, no LibTorch), and a command still needs the core
  ASSERT_EQ(test::run_command(tmp.file("bin/ccc") + " compress --help", &out), 0) << out;
  EXPECT_EQ(out.rfind("lossless compression", 0), 0u) << out;
  EXPECT_EQ(test::run_command(tmp.file("bin/ccc") + " compress -k --help 2>&1", &out), 127);
}

// Every help page the launcher prints from its build-time pages is byte for byte what ccc-core prints
// live: the command tree is walked from the top page's "Subcommands:" lists.
TEST(CliTest, LauncherHelpPagesAreTheCoresOwn) {
  test::TempDir tmp;
  const std::string core = (std::filesystem::path(CCC_BINARY).parent_path() / "ccc-core").string();
  std::vector<std::string> commands = {""};
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string page;
    ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " " + commands[i] + " --help", &page), 0) << commands[i];
    std::istringstream lines(page);
    std::string line;
    bool in_list = false;
    while (std::getline(lines, line)) {
      if (line == "Subcommands:") { in_list = true; continue; }
      if (in_list && line.size() > 2 && line[0] == ' ' && line[2] != ' ') {
        const std::string name = line.substr(2, line.find(' ', 2) - 2);
        commands.push_back(commands[i].empty() ? name : commands[i] + " " + name);
      } else if (in_list && line.empty()) {
        in_list = false;
      }
    }
  }
  ASSERT_GE(commands.size(), 25u);
  // the live pages, two at a time (each start of ccc-core loads LibTorch)
  std::string script = "cd " + tmp.path() + " && export OMP_WAIT_POLICY=PASSIVE\n";
  for (size_t i = 0; i < commands.size(); ++i)
    script += core + " " + commands[i] + " --help > live" + std::to_string(i) + (i % 2 ? "\nwait\n" : " &\n");
  script += "wait";
  ASSERT_EQ(test::run_command(script), 0);
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string cached;
    ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " " + commands[i] + " --help", &cached), 0);
    EXPECT_EQ(cached, read_file(tmp.file("live" + std::to_string(i)))) << "ccc " << commands[i] << " --help";
  }
  std::string bare;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY), &bare), 0);
  EXPECT_EQ(bare, read_file(tmp.file("live0")));
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// Flags mean one thing everywhere and errors say what to do: eval's --corpora is a directory (names are
// positional), init explains that it wants a model config, -m works on bench compress / quality,
// stories260K's tok512.bin is found without --tokenizer, every option's help shows its default.
TEST(CliTest, ConsistentFlagsAndHonestErrors) {
  const std::string ccc = CCC_BINARY;
  std::string out;
  EXPECT_NE(test::run_command(ccc + " eval --corpora /nonexistent-dir", &out), 0);
  EXPECT_NE(out.find("corpus names are positional"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + " eval no-such-corpus", &out), 0);
  EXPECT_NE(out.find("no-such-corpus"), std::string::npos) << out;
  test::TempDir tmp;
  EXPECT_NE(test::run_command(ccc + " init -c " + std::string(CCC_SOURCE_DIR) + "/data/configs/ccc-attn2.json -o " +
                                  tmp.file("m"), &out), 0);
  EXPECT_NE(out.find("init wants a model config"), std::string::npos) << out;
  for (const char* sub : {"bench compress", "bench quality"}) {
    EXPECT_NE(test::run_command(ccc + " " + sub + " -m " + tmp.file("none") + " " + tmp.file("none.txt"), &out), 0);
    EXPECT_EQ(out.find("extraneous"), std::string::npos) << sub << ": " << out;
    EXPECT_EQ(out.find("not expected"), std::string::npos) << sub << ": " << out;
  }
  // --tokenizer is taken (and used: the missing file is named) by every command that loads a model
  const std::string attn1 = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1", bad_tok = tmp.file("no-such-tok.json");
  write_file_atomic(tmp.file("small.txt"), "a small input\n");
  for (const std::string& cmd : std::vector<std::string>{"bits " + tmp.file("small.txt"), "info", "heads", "bench hooks --steps 1 --reps 1",
                                "bench decode -n 4 --reps 1", "bench dump --no-rss", "bench sweep --file " + tmp.file("small.txt"),
                                "bench units --dump-mb 1", "bench compress " + tmp.file("small.txt"),
                                "bench memory --sizes 0.01"}) {
    EXPECT_NE(test::run_command(ccc + " " + cmd + " -m " + attn1 + " --tokenizer " + bad_tok, &out), 0) << cmd;
    EXPECT_NE(out.find(bad_tok), std::string::npos) << cmd << ": " << out;
  }
  for (const char* sub : {"units", "bench quality", "eval", "compress", "decompress"}) {
    ASSERT_EQ(test::run_command(ccc + " " + sub + " --help", &out), 0);
    EXPECT_NE(out.find("--tokenizer"), std::string::npos) << sub << ": " << out;
  }
  ASSERT_EQ(test::run_command(ccc + " finetune --help", &out), 0);
  EXPECT_NE(out.find("=300"), std::string::npos) << out;  // --steps shows its default
  EXPECT_NE(out.find("peak learning rate"), std::string::npos) << out;
  const std::string ckpt = test::shared_path("models/stories260K.bin");
  if (!std::filesystem::exists(ckpt)) GTEST_SKIP() << "no ../shared";
  ASSERT_EQ(test::run_command("printf 'Once upon a time' | " + ccc + " bits -m " + ckpt + " - ", &out), 0) << out;
  EXPECT_NE(out.find("bits_per_byte"), std::string::npos) << out;
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// A window the model cannot take is refused before anything runs: non-zero exit naming the model and the
// window, and no output directory.
TEST(CliTest, BenchCompressRefusesAnImpossibleWindowBeforeRunning) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("x.txt"), std::string(500, 'a'));
  std::string out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " bench compress -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn1 " + tmp.file("x.txt") + " --window 0 --window 5000 --out-dir " +
                                  tmp.file("out") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--window 5000"), std::string::npos) << out;
  EXPECT_NE(out.find("ccc-attn1"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out"))) << out;
}

// bench compress in a directory whose name has a space and a quote: CSV fields quoted, unmeasured cells
// empty, the fingerprint and machine recorded, and the plots it names exist.
TEST(CliTest, BenchCompressQuotesPathsAndLeavesUnmeasuredCellsEmpty) {
  test::TempDir tmp;
  const std::string dir = tmp.file("a b'c");
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; text.size() < 2000; ++i) text += "word " + std::to_string(i % 37) + " ";
  write_file_atomic(dir + "/x,y.txt", text);
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " bench compress -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn1 " + "\"" + dir + "/x,y.txt\" --out-dir \"" + dir +
                                  "/out\" --window 0 --window 16", &out), 0)
      << out;
  const std::string csv = read_file(dir + "/out/bench_compress.csv");
  EXPECT_NE(csv.find("\n\"x,y.txt\",gzip -9,,,"), std::string::npos) << csv;  // no params or fingerprint for gzip
  const auto m = load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1");
  EXPECT_NE(csv.find(",ccc ccc-attn1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(m.fingerprint), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",-1"), std::string::npos) << csv;
  // the roofline (column roofline_GFLOP_s) is read beside each model's run: empty for gzip, positive for
  // the model, and the model's roofline share is its FLOPs at its speed over that reading
  auto fields = [&](const std::string& prefix) {
    std::vector<std::string> f;
    const std::string text = "\n" + csv;
    const size_t at = text.find("\n" + prefix);
    if (at == std::string::npos) return f;
    std::string cur;
    bool quoted = false;
    for (size_t i = at + 1; i < text.size() && (quoted || text[i] != '\n'); ++i) {
      if (text[i] == '"') quoted = !quoted;
      else if (text[i] == ',' && !quoted) f.push_back(std::exchange(cur, ""));
      else cur += text[i];
    }
    f.push_back(cur);
    return f;
  };
  const auto header = fields("file,");
  const auto gz = fields("\"x,y.txt\",gzip -9,"), cm = fields("\"x,y.txt\",ccc ccc-attn1,");
  ASSERT_EQ(header.size(), 19u) << csv;
  ASSERT_EQ(gz.size(), header.size()) << csv;
  ASSERT_EQ(cm.size(), header.size()) << csv;
  EXPECT_EQ(header[12], "roofline_GFLOP_s");
  EXPECT_EQ(gz[12], "");
  // one row per --window: the automatic one (n_ctx / 2 for a rotary model) and 16, each with its own bits
  EXPECT_EQ(header[13], "window");
  EXPECT_EQ(gz[13], "");
  EXPECT_EQ(cm[13], std::to_string(m.config.n_ctx / 2)) << csv;
  const auto w16 = fields("\"x,y.txt\",ccc ccc-attn1 (window 16),");
  ASSERT_EQ(w16.size(), header.size()) << csv;
  EXPECT_EQ(w16[13], "16");
  EXPECT_NE(w16[4], cm[4]) << "a 16-byte window should cost other bits than " << cm[13] << " on 2 KB";
  // K/V cache traffic: fp16 K and V per key (n_kv_heads x d_head each), so per byte it is the attention
  // FLOPs per byte x n_kv_heads / n_heads; at the run's speed; next to a positive memory bandwidth
  EXPECT_EQ(header[14], "kv_cache_bytes_per_byte");
  EXPECT_EQ(header[17], "memory_read_GB_s");
  EXPECT_EQ(gz[14], "");
  EXPECT_NEAR(std::stod(cm[14]), std::stod(cm[9]) * static_cast<double>(m.config.n_kv_heads) / m.config.n_heads, 1.0)
      << csv;
  EXPECT_LT(std::stod(w16[14]), std::stod(cm[14])) << "a shorter window reads less of its cache";
  // GB/s is printed to 3 decimals and MB/s to 4: allow both roundings (the second is what a slow run,
  // e.g. under a parallel ctest, makes large: it was 0.0019 GB/s at 0.024 MB/s)
  EXPECT_NEAR(std::stod(cm[15]), std::stod(cm[14]) * std::stod(cm[5]) / 1e3,
              0.0006 + std::stod(cm[14]) * 0.00005 / 1e3 + std::stod(cm[15]) * 1e-4)
      << csv;
  EXPECT_GT(std::stod(cm[17]), 0.0);
  const double roof = std::stod(cm[12]), params = std::stod(cm[2]), mb_s = std::stod(cm[5]);
  EXPECT_GT(roof, 0.0);
  // the CSV rounds MB/s to 4 decimals and the share to 2: allow exactly that rounding
  const double share = std::stod(cm[7]), tol = 0.006 + share * (0.00006 / mb_s + 1e-3);
  EXPECT_NEAR(share, 100.0 * 2.0 * params * mb_s * 1e6 / (roof * 1e9), tol) << csv;
  if (out.find("pareto.png") != std::string::npos) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/pareto.png"));
  }
  if (test::run_command("command -v gnuplot >/dev/null") == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/pareto.png")) << out;
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/scaling.png")) << out;
  }
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
  try {
    load_model(tmp.file("m"));
    ADD_FAILURE() << "integer weights accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("integer dtype"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// compress / decompress stream: peak RSS does not grow with the input (frames of 64 KiB, 0.3 vs 2.4 MB,
// measured by ccc bench memory on child processes, round trip checked there); whole-input commands refuse
// an unbounded input with a clear error instead of exhausting memory.
TEST(CliTest, StreamingKeepsMemoryFlatAndWholeInputsAreBounded) {
  const std::string ccc = CCC_BINARY;
  std::string out;
  ASSERT_EQ(test::run_command(ccc + " bench memory --sizes 0.3,2.4 --frame-bytes 65536", &out), 0) << out;
  std::vector<double> ratios;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| ", 0) != 0 || line.find("input") != std::string::npos) continue;
    ratios.push_back(std::stod(line.substr(line.rfind("| ", line.size() - 3) + 2)));
  }
  ASSERT_EQ(ratios.size(), 2u) << out;
  EXPECT_LT(ratios[1], 1.10) << out;  // 8x the input, within 10% of the memory (compress, decompress, bits)
  // per-token JSON holds the input whole: bounded, with a clear error
  EXPECT_NE(test::run_command("timeout 60 " + ccc + " bits --json -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1 /dev/zero", &out), 0);
  EXPECT_NE(out.find("/dev/zero: more than 256 MiB"), std::string::npos) << out;
}

}  // namespace
}  // namespace ccc::model
