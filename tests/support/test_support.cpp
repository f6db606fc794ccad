#include "tests/support/test_support.h"

#include <cstdio>
#include <filesystem>
#include <random>

#include "model/base/error.h"

namespace ccc::test {

model::ModelConfig tiny_config(const std::string& family) {
  model::ModelConfig c;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.d_head = 4;
  c.d_mlp = 32;
  c.n_ctx = 64;
  if (family == "gpt2") {
    c.arch = "gpt2";
    c.d_vocab = c.d_vocab_out = 50;
    c.tied_embed = true;
    c.bos_id = c.eos_id = 49;
  } else if (family == "gpt_neox") {
    c.arch = "gpt_neox";
    c.d_vocab = c.d_vocab_out = 50;
    c.pos = model::PosKind::kRotary;
    c.rotary_dim = 2;
    c.parallel_attn = true;
    c.act = model::ActKind::kGelu;
    c.bos_id = c.eos_id = 0;
  } else if (family == "llama") {
    c.arch = "llama";
    c.d_vocab = c.d_vocab_out = 50;
    c.n_kv_heads = 2;
    c.norm = model::NormKind::kRMSNorm;
    c.pos = model::PosKind::kRotary;
    c.rotary_dim = 4;
    c.gated_mlp = true;
    c.act = model::ActKind::kSilu;
    c.attn_bias = c.mlp_bias = c.norm_bias = false;
    c.bos_id = 1;
    c.eos_id = 2;
  } else if (family == "byte_attn_only") {
    c.arch = "ccc";
    c.d_vocab = 257;
    c.d_vocab_out = 256;
    c.attn_only = true;
    c.tied_embed = true;
    c.bos_id = 256;
  } else {
    throw std::runtime_error("unknown tiny family " + family);
  }
  return c;
}

// Rotary (rolling window policy) unless `learned`; d_head 8 runs the AVX2 decode kernel.
model::LoadedModel tiny_byte_lm(uint64_t seed, int64_t n_ctx, bool learned) {
  const auto cfg = model::tiny_byte_config(2, n_ctx, learned);
  model::LoadedModel m;
  m.config = cfg;
  m.model = model::Transformer(cfg);
  m.model->init_weights(seed);
  {
    torch::NoGradGuard g;
    auto gen = at::detail::createCPUGenerator(seed + 9);
    for (auto& p : m.model->parameters()) p.add_(torch::randn(p.sizes(), gen) * 0.3);
  }
  m.model->eval();
  m.tokenizer = std::make_shared<model::ByteTokenizer>();
  m.source = "tiny-byte";
  m.fingerprint = model::model_fingerprint(cfg, m.model, *m.tokenizer);
  return m;
}

model::Transformer random_model(const model::ModelConfig& c, uint64_t seed, double scale) {
  model::Transformer m(c);
  m->init_weights(seed);
  // Larger-than-init weights so that every component visibly matters in comparisons.
  torch::NoGradGuard g;
  auto gen = at::detail::createCPUGenerator(seed + 100);
  for (auto& p : m->parameters()) p.add_(torch::randn(p.sizes(), gen) * scale);
  m->eval();
  return m;
}

torch::Tensor random_tokens(const model::Transformer& m, int64_t b, int64_t p, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, m->config().d_vocab, {b, p}, torch::kInt64);
}

model::Transformer tiny_model(const std::string& family, uint64_t seed) {
  return random_model(tiny_config(family), seed, 0.2);
}

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (;;) {
    auto p = base / ("ccc_test_" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p.string();
      break;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string shared_path(const std::string& rel) {
  auto p = std::filesystem::path(CCC_SHARED_DIR) / "data" / rel;
  std::error_code ec;
  return std::filesystem::exists(p, ec) ? p.string() : "";
}

bool python_torch_available() {
  static int ok = -1;
  if (ok < 0) ok = run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0 ? 1 : 0;
  return ok == 1;
}

int run_command(const std::string& cmd, std::string* output) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

std::string expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' missing from: " << what;
    return what;
  }
  ADD_FAILURE() << "no error; expected one mentioning '" << (needles.empty() ? std::string() : needles.front()) << "'";
  return "";
}

std::string repeated_strings(int count, int len, uint32_t seed, bool newline) {
  std::mt19937 rng(seed);
  std::string t;
  for (int i = 0; i < count; ++i) {
    std::string r;
    for (int k = 0; k < len; ++k) r += static_cast<char>(32 + rng() % 95);
    t += r + r + (newline ? "\n" : "");
  }
  return t;
}

std::string synthetic_text(uint64_t seed, size_t n) {
  const char* subj[] = {"the cat", "a dog", "my friend", "the old man", "every child"};
  const char* verb[] = {"sees", "likes", "finds", "takes", "wants"};
  const char* obj[] = {"the ball.", "a red hat.", "some bread.", "the green door.", "my book."};
  std::mt19937_64 rng(seed);
  std::string s;
  while (s.size() < n) {
    s += subj[rng() % 5];
    s += ' ';
    s += verb[rng() % 5];
    s += ' ';
    s += obj[rng() % 5];
    s += (rng() % 4 == 0) ? '\n' : ' ';
  }
  return s;
}

std::string unicode_text() {
  std::string text;
  while (text.size() < 1200) text += "The quick brown fox jumps over the lazy dog. \u00dcn\u00efc\u00f6d\u00e9 \U0001f999 \u0442\u0435\u043a\u0441\u0442. ";
  return text;
}

}  // namespace ccc::test
