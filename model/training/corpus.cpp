#include "model/training/corpus.h"

#include <cstdlib>
#include <filesystem>

#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::model {

std::pair<size_t, size_t> Corpus::range(Split s) const {
  const size_t n = bytes.size();
  const size_t a = n * 90 / 100, b = n * 95 / 100;
  switch (s) {
    case Split::kTrain: return {0, a};
    case Split::kValidation: return {a, b};
    case Split::kHeldOut: return {b, n};
  }
  return {0, 0};
}

std::string Corpus::split(Split s) const {
  auto [a, b] = range(s);
  return bytes.substr(a, b - a);
}

Corpus load_corpus(const std::string& dir, const std::string& name) {
  Corpus c;
  c.name = name;
  c.path = (std::filesystem::path(dir) / (name + ".txt")).string();
  std::error_code ec;
  CCC_CHECK(std::filesystem::exists(c.path, ec), "corpus '", name, "': ", c.path,
            " does not exist (run ./setup.sh to fetch the corpora, or pass --corpora DIR)");
  c.bytes = read_file(c.path);
  CCC_CHECK(c.bytes.size() >= 1000, "corpus '", name, "': ", c.path, " is empty or too small (", c.bytes.size(),
            " bytes; need at least 1000 for the train/validation/held-out split)");
  c.sha256 = sha256_hex(c.bytes);
  return c;
}

std::string default_corpus_dir(const std::string& source_dir) {
  if (const char* env = std::getenv("CCC_CORPORA"); env != nullptr && *env) return env;
  std::error_code ec;
  auto shared = std::filesystem::path(source_dir) / ".." / "shared" / "data" / "corpora";
  if (std::filesystem::exists(shared, ec)) return std::filesystem::weakly_canonical(shared, ec).string();
  return (std::filesystem::path(source_dir) / ".cache" / "corpora").string();
}

const std::vector<std::string>& all_corpora() {
  static const std::vector<std::string> v = {"sotu-all", "moby-dick", "tinyshakespeare", "jargon", "fortunes-all",
                                             "llamacpp-src", "code-headers"};
  return v;
}

std::vector<std::string> present_corpora(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& n : all_corpora())
    if (std::filesystem::exists(std::filesystem::path(dir) / (n + ".txt"), ec)) names.push_back(n);
  return names;
}

}  // namespace ccc::model
