// GPT-2 byte-level BPE: bytes -> printable unicode map, the GPT-2 pre-tokenizer regex (PCRE2, Unicode
// properties, invalid UTF-8 tolerated), then rank-ordered merges.

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <climits>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/base/error.h"
#include "model/formats/tokenizer.h"
#include "model/base/util.h"

namespace ccc::model {

namespace {

// Token ids may exceed the vocabulary's entry count by this much (gaps left by removed or reserved tokens).
constexpr int64_t kMaxIdGap = 1024;

// The pattern of OpenAI's encoder.py, unchanged.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

class Gpt2Tokenizer final : public Tokenizer {
 public:
  Gpt2Tokenizer(std::unordered_map<std::string, int64_t> vocab, std::vector<std::pair<std::string, std::string>> merges,
                std::string source)
      : vocab_(std::move(vocab)) {
    // bytes_to_unicode(): printable bytes map to themselves, the rest to 256 + n.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      byte_to_unicode_[b] = utf8(printable ? b : 256 + n++);
      unicode_to_byte_[byte_to_unicode_[b]] = static_cast<unsigned char>(b);
    }
    // Ids are bounded by the vocabulary's size (a forged id must not size a table) and distinct (two tokens
    // with one id could not be told apart when decoding).
    int64_t max_id = -1;
    const int64_t id_bound = static_cast<int64_t>(vocab_.size()) + kMaxIdGap;
    for (const auto& [tok, id] : vocab_) {
      CCC_CHECK(id >= 0 && id < id_bound, source, ": token '", tok, "' has id ", id, "; the ids of a vocabulary of ",
                vocab_.size(), " tokens must lie in [0, ", id_bound, ")");
      max_id = std::max(max_id, id);
    }
    id_to_token_.assign(max_id + 1, std::string());
    id_known_.assign(max_id + 1, false);
    for (const auto& [tok, id] : vocab_) {
      CCC_CHECK(!id_known_[id], source, ": id ", id, " is given to two tokens ('", id_to_token_[id], "' and '", tok, "')");
      id_to_token_[id] = tok;
      id_known_[id] = true;
    }
    for (int b = 0; b < 256; ++b)
      CCC_CHECK(vocab_.count(byte_to_unicode_[b]), source, ": vocabulary lacks the byte token for byte ", b,
                " (not a byte-level BPE?)");
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& [a, b] = merges[r];
      for (const std::string& sym : {a, b, a + b})
        CCC_CHECK(vocab_.count(sym), source, ": merge ", r + 1, " ('", a, " ", b, "') uses or makes '", sym,
                  "', which is not in the vocabulary (inconsistent merges)");
      ranks_.emplace(a + ' ' + b, static_cast<int>(r));
      serial_ += a + ' ' + b + '\n';
    }
    auto eot = vocab_.find("<|endoftext|>");
    eot_ = eot == vocab_.end() ? -1 : eot->second;
    for (int64_t id = 0; id <= max_id; ++id) serial_ += id_to_token_[id] + '\n';

    int err = 0;
    PCRE2_SIZE off = 0;
    re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    CCC_CHECK(re_ != nullptr, "gpt2 tokenizer: cannot compile the pre-tokenizer regex (PCRE2 error ", err, ")");
    jit_ = pcre2_jit_compile(re_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Gpt2Tokenizer() override { pcre2_code_free(re_); }

  std::vector<int64_t> encode(std::string_view text) const override {
    std::vector<int64_t> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
      int rc = pcre2_match(re_, subject, text.size(), pos, 0, md, nullptr);
      size_t start = text.size(), end = text.size();
      if (rc > 0) {
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        start = ov[0];
        end = ov[1];
      }
      // Bytes the regex cannot match (invalid UTF-8) form pieces of their own: every byte has a token.
      if (start > pos) bpe(text.substr(pos, start - pos), out);
      if (end > start) bpe(text.substr(start, end - start), out);
      if (end == start) {
        if (start >= text.size()) break;
        end = start + 1;  // empty match: should not happen with this pattern; step on to stay total
        bpe(text.substr(start, 1), out);
      }
      pos = end;
    }
    pcre2_match_data_free(md);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    for (int64_t id : ids) {
      CCC_CHECK(id >= 0 && id < static_cast<int64_t>(id_known_.size()) && id_known_[id], "gpt2 tokenizer: unknown id ", id);
      const std::string& tok = id_to_token_[id];
      if (id == eot_) {
        out += tok;
        continue;
      }
      for (size_t i = 0; i < tok.size();) {
        size_t len = 1;
        unsigned char c = tok[i];
        if (c >= 0xF0) len = 4; else if (c >= 0xE0) len = 3; else if (c >= 0xC0) len = 2;
        auto it = unicode_to_byte_.find(tok.substr(i, len));
        if (it == unicode_to_byte_.end()) {
          out += tok.substr(i, len);  // added tokens keep their text
        } else {
          out.push_back(static_cast<char>(it->second));
        }
        i += len;
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t bos_id() const override { return eot_; }
  int64_t eos_id() const override { return eot_; }
  std::string kind() const override { return "gpt2-bpe"; }
  std::string token_bytes(int64_t id) const override { return decode({id}); }
  bool lossless() const override { return true; }
  std::string serialize() const override { return "gpt2-bpe\n" + serial_; }

 private:
  void bpe(std::string_view piece, std::vector<int64_t>& out) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto hit = cache_.find(std::string(piece));
      if (hit != cache_.end()) {
        out.insert(out.end(), hit->second.begin(), hit->second.end());
        return;
      }
    }
    std::vector<std::string> word;
    for (unsigned char c : piece) word.push_back(byte_to_unicode_[c]);
    while (word.size() > 1) {
      int best = INT_MAX;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = ranks_.find(word[i] + ' ' + word[i + 1]);
        if (it != ranks_.end() && it->second < best) {
          best = it->second;
          best_i = i;
        }
      }
      if (best == INT_MAX) break;
      // merge every occurrence of the best pair, left to right
      const std::string a = word[best_i], b = word[best_i + 1];
      std::vector<std::string> next;
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          next.push_back(a + b);
          i += 2;
        } else {
          next.push_back(word[i++]);
        }
      }
      word.swap(next);
    }
    std::vector<int64_t> ids;
    for (const auto& w : word) {
      auto it = vocab_.find(w);
      CCC_CHECK(it != vocab_.end(), "gpt2 tokenizer: merged symbol is not in the vocabulary (inconsistent merges)");
      ids.push_back(it->second);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(mu_);
    if (cache_.size() < 1000000) cache_.emplace(std::string(piece), std::move(ids));
  }

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_known_;
  std::unordered_map<std::string, int> ranks_;
  std::string byte_to_unicode_[256];
  std::unordered_map<std::string, unsigned char> unicode_to_byte_;
  int64_t eot_ = -1;
  std::string serial_;
  pcre2_code* re_ = nullptr;
  bool jit_ = false;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

std::unordered_map<std::string, int64_t> parse_vocab(const nlohmann::json& j, const std::string& source) {
  CCC_CHECK(j.is_object(), source, ": vocabulary must be a JSON object {token: id}");
  std::unordered_map<std::string, int64_t> vocab;
  for (auto it = j.begin(); it != j.end(); ++it) {
    CCC_CHECK(it.value().is_number_integer(), source, ": id of token '", it.key(), "' is not an integer");
    vocab[it.key()] = it.value().get<int64_t>();
  }
  return vocab;
}

nlohmann::json parse_json_file(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path, kJsonCap));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(path, ": not valid JSON: ", e.what());
  }
}

std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& source, size_t lineno) {
  auto sp = line.find(' ');
  CCC_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < line.size() && line.find(' ', sp + 1) == std::string::npos,
            source, ":", lineno, ": merge must be two symbols separated by one space");
  return {line.substr(0, sp), line.substr(sp + 1)};
}

}  // namespace

std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json, const std::string& merges_txt) {
  auto vocab = parse_vocab(parse_json_file(vocab_json), vocab_json);
  std::string text = read_file(merges_txt);
  std::vector<std::pair<std::string, std::string>> merges;
  size_t lineno = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(split_merge(line, merges_txt, lineno));
  }
  return std::make_unique<Gpt2Tokenizer>(std::move(vocab), std::move(merges), vocab_json);
}

namespace {

std::unique_ptr<Tokenizer> load_hf_tokenizer_json_fields(const std::string& path) {
  auto j = parse_json_file(path);
  CCC_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), path, ": missing object 'model'");
  const auto& m = j["model"];
  CCC_CHECK(m.value("type", "") == "BPE", path, ": model.type is '", m.value("type", ""), "', only BPE is supported");
  CCC_CHECK(j.contains("pre_tokenizer") && j["pre_tokenizer"].dump().find("ByteLevel") != std::string::npos, path,
            ": pre_tokenizer is not ByteLevel (only GPT-2 style byte-level BPE is supported)");
  CCC_CHECK(m.contains("vocab"), path, ": missing model.vocab");
  auto vocab = parse_vocab(m["vocab"], path);
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (const auto& t : j["added_tokens"])
      if (t.is_object() && t.contains("content") && t.contains("id")) vocab[t["content"].get<std::string>()] = t["id"].get<int64_t>();
  CCC_CHECK(m.contains("merges") && m["merges"].is_array(), path, ": missing array model.merges");
  std::vector<std::pair<std::string, std::string>> merges;
  size_t i = 0;
  for (const auto& e : m["merges"]) {
    ++i;
    if (e.is_string()) {
      merges.push_back(split_merge(e.get<std::string>(), path, i));
    } else {
      CCC_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), path, ": merge ", i,
                " is neither \"a b\" nor [a, b]");
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  return std::make_unique<Gpt2Tokenizer>(std::move(vocab), std::move(merges), path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  try {
    return load_hf_tokenizer_json_fields(path);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong JSON type
    CCC_FAIL(path, ": unexpected tokenizer.json contents (", e.what(), ")");
  }
}

}  // namespace ccc::model
