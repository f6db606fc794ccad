#pragma once
// Helpers shared by the test suites: tiny models built in code, temporary directories, ../shared access.

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/core/config.h"
#include "model/core/transformer.h"
#include "model/formats/loader.h"

namespace ccc::test {

/// Tiny configs (2 layers, d_model 16) of each family: "gpt2", "gpt_neox", "llama" (GQA), "byte_attn_only".
model::ModelConfig tiny_config(const std::string& family);
/// The families tiny_config knows.
inline const char* const kTinyFamilies[] = {"gpt2", "gpt_neox", "llama", "byte_attn_only"};
/// Uniform random token ids [b, p] in [0, d_vocab) of the model (seeded).
torch::Tensor random_tokens(const model::Transformer& m, int64_t b, int64_t p, uint64_t seed = 5);
/// A tiny model with random weights (seeded) in eval mode.
model::Transformer tiny_model(const std::string& family, uint64_t seed = 1);
/// init_weights(seed) plus N(0, scale) noise on every parameter, in eval mode.
model::Transformer random_model(const model::ModelConfig& c, uint64_t seed, double scale);

/// A tiny byte-level LoadedModel (byte tokenizer, fingerprint) with random weights, 2 heads of d_head 8 and
/// an MLP; rotary positions (the compressor's rolling policy) unless `learned`.
model::LoadedModel tiny_byte_lm(uint64_t seed = 1, int64_t n_ctx = 16, bool learned = false);

/// `count` strings of `len` random printable bytes (seeded), each written twice in a row (then a newline
/// when `newline`): the probe text of induction and copying.
std::string repeated_strings(int count, int len, uint32_t seed, bool newline = false);

/// A small learnable corpus of `n` bytes: sentences from a tiny grammar (seeded).
std::string synthetic_text(uint64_t seed, size_t n);

/// ~1200 bytes of multi-byte UTF-8 text ("The quick brown fox ... Ünïcödé 🦙 текст. ") repeated.
std::string unicode_text();

/// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Path inside ../shared/data, or "" when ../shared is absent (a user's fresh clone).
std::string shared_path(const std::string& rel);
/// True when /usr/bin/python3 can import torch (Debian's python3-torch).
bool python_torch_available();
/// Runs a shell command, returns its exit status and captures stdout+stderr into `output`.
int run_command(const std::string& cmd, std::string* output = nullptr);
/// Runs `fn` and expects a ccc::Error whose message contains every one of `needles` (a failure names the
/// missing needle and prints the message). Returns the message ("" when nothing was thrown).
std::string expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles);

/// max |a - b| over all elements.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace ccc::test

#define CCC_REQUIRE_SHARED(path)                                                         \
  if ((path).empty()) GTEST_SKIP() << "../shared is absent: this check needs its data"

#define CCC_REQUIRE_PYTHON_TORCH()                                                        \
  if (!::ccc::test::python_torch_available())                                             \
  GTEST_SKIP() << "/usr/bin/python3 with torch (Debian python3-torch) is not installed"
