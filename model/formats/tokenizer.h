#pragma once
// Tokenizers: byte-level (lossless for any bytes), GPT-2 byte-level BPE, llama2.c / sentencepiece-style BPE.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::model {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Bytes -> token ids (no BOS; callers prepend the model's BOS).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  /// Token ids -> bytes. Inverse of encode where lossless() holds. Unknown ids are an error.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;  ///< -1 when none
  virtual std::string kind() const = 0;  ///< "byte", "gpt2-bpe", "llama2c-bpe"
  /// True when decode(encode(x)) == x for every byte string x.
  virtual bool lossless() const = 0;
  /// Canonical bytes describing the tokenizer (hashed into the model fingerprint).
  virtual std::string serialize() const = 0;
  /// The bytes token `id` contributes to decoded text, before any prefix stripping ("" for BOS / EOS).
  virtual std::string token_bytes(int64_t id) const = 0;
  /// Bytes encode() puts before the text (llama2.c's dummy-prefix space: 1; otherwise 0).
  virtual int64_t prefix_bytes() const { return 0; }
  /// offsets[i] = offset in the encoded text of the first byte of ids[i], for ids = encode(text): the running
  /// sum of token_bytes lengths minus prefix_bytes (clamped at 0: the token holding the dummy prefix starts
  /// at 0). Exact for every tokenizer here (tested: text.substr(offsets[i], len) is token i's bytes).
  std::vector<int64_t> byte_offsets(const std::vector<int64_t>& ids) const;
};

/// 256 byte tokens (id = byte value) plus BOS = 256.
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return 257; }
  int64_t bos_id() const override { return 256; }
  int64_t eos_id() const override { return -1; }
  std::string kind() const override { return "byte"; }
  bool lossless() const override { return true; }
  std::string serialize() const override { return "ccc-byte-tokenizer-v1"; }
  std::string token_bytes(int64_t id) const override { return id < 256 ? std::string(1, static_cast<char>(id)) : ""; }
};

/// GPT-2 byte-level BPE from vocab.json (encoder.json) + merges.txt (vocab.bpe).
std::unique_ptr<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json, const std::string& merges_txt);
/// Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer (GPT-2 family).
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);
/// llama2.c tokenizer.bin (sentencepiece-style BPE with byte fallback <0xXX> at ids 3..258, BOS 1, EOS 2).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int64_t vocab_size);

/// Picks a loader from the path: a directory (tokenizer.json, or vocab.json + merges.txt, or
/// encoder.json + vocab.bpe), a tokenizer.json, a vocab.json / encoder.json (merges beside it), or a
/// llama2.c .bin (needs vocab_size). Throws ccc::Error naming the path otherwise.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t vocab_size);

}  // namespace ccc::model
