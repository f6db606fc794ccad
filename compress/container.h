#pragma once
// The .ccc container: a self-checking header followed by one arithmetic-coded payload per stream.
// No torch here; parsing is defensive (every read bounds-checked) and fuzzed (tests/compress/fuzz_container.cpp).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::compress {

constexpr char kMagic[4] = {'C', 'C', 'C', 'Z'};
constexpr uint16_t kFormatVersion = 1;

struct StreamInfo {
  uint64_t n_bytes = 0;   ///< bytes of the original this stream codes
  uint64_t n_tokens = 0;  ///< coded tokens (BOS excluded)
  uint64_t payload_bytes = 0;
};

struct Header {
  uint16_t version = kFormatVersion;
  std::array<uint8_t, 32> fingerprint{};  ///< sha256 of model config + weights + tokenizer
  std::string tokenizer_kind;
  std::string model_hint;   ///< path the encoder loaded the model from (a hint only)
  std::string runtime_id;   ///< build, LibTorch version, BLAS kernel path of the encoder
  uint64_t original_bytes = 0;
  uint64_t checksum = 0;    ///< XXH64 (seed 0) of the original
  uint32_t n_groups = 1;    ///< stream groups, each one model batch on one thread
  uint32_t window = 0;      ///< context window W (tokens)
  uint32_t stride = 0;      ///< window stride S; re-prefill keeps W - 1 - S tokens
  uint8_t total_log2 = 30;  ///< CDF total = 2^total_log2
  std::vector<StreamInfo> streams;
};

/// Serialises the header (including its own trailing XXH64).
std::string serialize_header(const Header& h);

/// Parses a container: the header, then checks that the payloads exactly fill the rest of `bytes`.
/// Throws ccc::Error naming `name` and the field on truncation, corruption or a version mismatch.
/// `payload_offset` receives where the first payload starts.
Header parse_container(std::string_view bytes, const std::string& name, size_t* payload_offset);

uint64_t xxh64(std::string_view bytes);
std::string hex(const std::array<uint8_t, 32>& fp);
std::array<uint8_t, 32> fingerprint_from_hex(const std::string& hex);

}  // namespace ccc::compress
