// llama2.c tokenizer.bin: sentencepiece-style BPE driven by piece scores, with byte fallback.
// encode() follows llama2.c run.c: a dummy-prefix space, one piece per UTF-8 character (byte-fallback
// ids byte+3 when the character is not a piece), then repeatedly merge the adjacent pair whose
// concatenation is a piece with the highest score (leftmost on ties).

#include <cstring>
#include <unordered_map>

#include "model/base/error.h"
#include "model/formats/tokenizer.h"
#include "model/base/util.h"

namespace ccc::model {

namespace {

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::string serial)
      : pieces_(std::move(pieces)), scores_(std::move(scores)), serial_(std::move(serial)) {
    for (size_t i = 0; i < pieces_.size(); ++i) lookup_.emplace(pieces_[i], static_cast<int64_t>(i));  // first wins
  }

  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int64_t> ids;
    if (text.empty()) return ids;
    auto sp = lookup_.find(" ");
    CCC_CHECK(sp != lookup_.end(), "llama2c tokenizer: vocabulary has no ' ' piece for the dummy prefix");
    ids.push_back(sp->second);
    for (size_t i = 0; i < text.size();) {
      size_t len = 1;
      while (len < 4 && i + len < text.size() && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
      auto it = lookup_.find(std::string(text.substr(i, len)));
      if (it != lookup_.end()) {
        ids.push_back(it->second);
      } else {
        for (size_t k = 0; k < len; ++k) ids.push_back(static_cast<unsigned char>(text[i + k]) + 3);
      }
      i += len;
    }
    std::string merged;
    while (true) {
      float best = -1e10f;
      int64_t best_id = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        merged = pieces_[ids[i]];
        merged += pieces_[ids[i + 1]];
        auto it = lookup_.find(merged);
        if (it != lookup_.end() && scores_[it->second] > best) {
          best = scores_[it->second];
          best_id = it->second;
          best_i = i;
        }
      }
      if (best_id < 0) break;
      ids[best_i] = best_id;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t id : ids) {
      CCC_CHECK(id >= 0 && id < vocab_size(), "llama2c tokenizer: id ", id, " outside [0, ", vocab_size(), ")");
      if (id == 1 || id == 2) continue;  // BOS / EOS carry no text
      out += piece_bytes(id);
    }
    // encode() added a dummy-prefix space: take it off again.
    if (!out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  int64_t bos_id() const override { return 1; }
  int64_t eos_id() const override { return 2; }
  std::string kind() const override { return "llama2c-bpe"; }
  std::string token_bytes(int64_t id) const override {
    CCC_CHECK(id >= 0 && id < vocab_size(), "llama2c tokenizer: id ", id, " outside [0, ", vocab_size(), ")");
    return id == 1 || id == 2 ? std::string() : piece_bytes(id);
  }
  int64_t prefix_bytes() const override { return 1; }
  bool lossless() const override { return true; }
  std::string serialize() const override { return serial_; }

 private:
  std::string piece_bytes(int64_t id) const {
    const std::string& p = pieces_[id];
    unsigned int byte = 0;
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && std::sscanf(p.c_str(), "<0x%02X>", &byte) == 1)
      return std::string(1, static_cast<char>(byte));
    return p;
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int64_t> lookup_;
  std::string serial_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int64_t vocab_size) {
  CCC_CHECK(vocab_size > 258, path, ": a llama2.c tokenizer needs the model's vocab_size (> 258), got ", vocab_size);
  std::string bytes = read_file(path);
  size_t pos = 0;
  auto take = [&](void* dst, size_t n, const char* what) {
    CCC_CHECK(pos + n <= bytes.size(), path, ": truncated while reading ", what, " at byte ", pos);
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  int32_t max_len = 0;
  take(&max_len, 4, "max_token_length");
  CCC_CHECK(max_len > 0 && max_len < 1024, path, ": implausible max_token_length ", max_len);
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (int64_t i = 0; i < vocab_size; ++i) {
    float score = 0;
    int32_t len = 0;
    take(&score, 4, "a token score");
    take(&len, 4, "a token length");
    CCC_CHECK(len >= 0 && len <= max_len, path, ": token ", i, " has length ", len, " (max_token_length ", max_len, ")");
    std::string piece(static_cast<size_t>(len), '\0');
    if (len > 0) take(piece.data(), static_cast<size_t>(len), "token bytes");
    pieces.push_back(std::move(piece));
    scores.push_back(score);
  }
  CCC_CHECK(pos == bytes.size(), path, ": ", bytes.size() - pos, " trailing bytes after ", vocab_size,
            " tokens (vocab_size does not match this tokenizer?)");
  for (int b = 0; b < 256; ++b) {
    char want[8];
    std::snprintf(want, sizeof want, "<0x%02X>", b);
    CCC_CHECK(pieces[b + 3] == want, path, ": token ", b + 3, " is '", pieces[b + 3], "', expected byte fallback ", want);
  }
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), "llama2c-bpe\n" + bytes);
}

}  // namespace ccc::model
