#include "model/formats/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "model/base/error.h"

namespace ccc::model {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::vector<int64_t> Tokenizer::byte_offsets(const std::vector<int64_t>& ids) const {
  std::vector<int64_t> out;
  out.reserve(ids.size());
  int64_t at = -prefix_bytes();
  for (int64_t id : ids) {
    out.push_back(std::max<int64_t>(0, at));
    at += static_cast<int64_t>(token_bytes(id).size());
  }
  return out;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    CCC_CHECK(id >= 0 && id <= 256, "byte tokenizer: id ", id, " is not a byte or BOS");
    if (id < 256) out.push_back(static_cast<char>(id));
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t vocab_size) {
  namespace fs = std::filesystem;
  std::error_code ec;
  CCC_CHECK(fs::exists(path, ec), "tokenizer: ", path, " does not exist");
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "tokenizer.json", ec)) return load_hf_tokenizer_json((p / "tokenizer.json").string());
    if (fs::exists(p / "vocab.json", ec) && fs::exists(p / "merges.txt", ec))
      return load_gpt2_tokenizer((p / "vocab.json").string(), (p / "merges.txt").string());
    if (fs::exists(p / "encoder.json", ec) && fs::exists(p / "vocab.bpe", ec))
      return load_gpt2_tokenizer((p / "encoder.json").string(), (p / "vocab.bpe").string());
    if (fs::exists(p / "tokenizer.bin", ec)) return load_llama2c_tokenizer((p / "tokenizer.bin").string(), vocab_size);
    CCC_FAIL("tokenizer: directory ", path, " has no tokenizer.json, vocab.json+merges.txt, encoder.json+vocab.bpe or tokenizer.bin");
  }
  const auto name = p.filename().string();
  if (name == "tokenizer.json") return load_hf_tokenizer_json(path);
  if (name == "vocab.json") return load_gpt2_tokenizer(path, (p.parent_path() / "merges.txt").string());
  if (name == "encoder.json") return load_gpt2_tokenizer(path, (p.parent_path() / "vocab.bpe").string());
  if (p.extension() == ".bin") return load_llama2c_tokenizer(path, vocab_size);
  CCC_FAIL("tokenizer: cannot tell the format of ", path,
           " (expected a directory, tokenizer.json, vocab.json, encoder.json or a llama2.c .bin)");
}

}  // namespace ccc::model
