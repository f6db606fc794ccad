#include "model/training/corpus.h"

#include <algorithm>
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

std::vector<Corpus> load_corpora(const std::string& dir, const std::vector<std::string>& names) {
  std::vector<Corpus> out;
  for (const auto& n : names) out.push_back(load_corpus(dir, n));
  return out;
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
  const auto cache = std::filesystem::path(source_dir) / ".cache" / "corpora";
  if (std::filesystem::exists(cache / "manifest.json", ec)) return cache.string();
  auto shared = std::filesystem::path(source_dir) / ".." / "shared" / "data" / "corpora";
  if (std::filesystem::exists(shared, ec)) return std::filesystem::weakly_canonical(shared, ec).string();
  return cache.string();
}

const std::vector<std::string>& all_corpora() {
  static const std::vector<std::string> v = {
      "sotu-all",     "moby-dick",    "tinyshakespeare", "jargon",        "fortunes-all",    "llamacpp-src",
      "code-headers", "markdown-nodejs", "html-nodejs", "json-nodejs",   "xml-isocodes",    "man-roff",
      "c-hdf5",       "cpp-eigen",    "python-torch",    "shell-completion"};
  return v;
}

std::string corpus_domain(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> d = {
      {"sotu-all", "prose"},          {"moby-dick", "prose"},          {"tinyshakespeare", "dialogue"},
      {"jargon", "dictionary"},       {"fortunes-all", "quotations"},  {"llamacpp-src", "code"},
      {"code-headers", "code"},       {"markdown-nodejs", "markup"},   {"html-nodejs", "markup"},
      {"json-nodejs", "data"},        {"xml-isocodes", "data"},        {"man-roff", "markup"},
      {"c-hdf5", "code"},             {"cpp-eigen", "code"},           {"python-torch", "code"},
      {"shell-completion", "code"}};
  for (const auto& [n, dom] : d)
    if (n == name) return dom;
  return "other";
}

std::vector<std::string> present_corpora(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& n : all_corpora())
    if (std::filesystem::exists(std::filesystem::path(dir) / (n + ".txt"), ec)) names.push_back(n);
  return names;
}

HeldOutMix held_out_mix(const std::string& dir, const std::vector<std::string>& names, size_t bytes_per_corpus) {
  HeldOutMix mix;
  for (const auto& name : names) {
    const std::string held = load_corpus(dir, name).split(Split::kHeldOut);
    const size_t a = mix.text.size();
    mix.text += held.substr(0, std::min(held.size(), bytes_per_corpus));
    mix.ranges.push_back({name, corpus_domain(name), a, mix.text.size()});
  }
  return mix;
}

}  // namespace ccc::model
