#include "compress/container.h"

#include <xxhash.h>

#include <cstring>

#include "model/error.h"

namespace ccc::compress {

uint64_t xxh64(std::string_view bytes) { return XXH64(bytes.data(), bytes.size(), 0); }

std::string hex(const std::array<uint8_t, 32>& fp) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (uint8_t b : fp) {
    s += k[b >> 4];
    s += k[b & 15];
  }
  return s;
}

std::array<uint8_t, 32> fingerprint_from_hex(const std::string& h) {
  CCC_CHECK(h.size() == 64, "fingerprint must be 64 hex digits");
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < 32; ++i) out[i] = static_cast<uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

namespace {

struct Writer {
  std::string s;
  template <typename T>
  void num(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) s.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
  void str(const std::string& v) {
    CCC_CHECK(v.size() < 65536, "container: string field too long");
    num<uint16_t>(static_cast<uint16_t>(v.size()));
    s += v;
  }
};

struct Reader {
  std::string_view b;
  const std::string& name;
  size_t pos = 0;
  void need(size_t n, const char* field) {
    CCC_CHECK(n <= b.size() && pos <= b.size() - n, name, ": truncated in header field '", field, "' (at byte ", pos,
              ", file has ", b.size(), " bytes)");
  }
  template <typename T>
  T num(const char* field) {
    need(sizeof(T), field);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[pos + i])) << (8 * i);
    pos += sizeof(T);
    return static_cast<T>(v);
  }
  std::string str(const char* field) {
    const uint16_t n = num<uint16_t>(field);
    need(n, field);
    std::string out(b.substr(pos, n));
    pos += n;
    return out;
  }
};

}  // namespace

std::string serialize_header(const Header& h) {
  Writer w;
  w.s.append(kMagic, 4);
  w.num<uint16_t>(h.version);
  for (uint8_t b : h.fingerprint) w.num<uint8_t>(b);
  w.str(h.tokenizer_kind);
  w.str(h.model_hint);
  w.str(h.runtime_id);
  w.num<uint64_t>(h.original_bytes);
  w.num<uint64_t>(h.checksum);
  w.num<uint32_t>(static_cast<uint32_t>(h.streams.size()));
  w.num<uint32_t>(h.n_groups);
  w.num<uint32_t>(h.window);
  w.num<uint32_t>(h.stride);
  w.num<uint8_t>(h.total_log2);
  for (const auto& s : h.streams) {
    w.num<uint64_t>(s.n_bytes);
    w.num<uint64_t>(s.n_tokens);
    w.num<uint64_t>(s.payload_bytes);
  }
  w.num<uint64_t>(xxh64(w.s));
  return w.s;
}

Header parse_container(std::string_view bytes, const std::string& name, size_t* payload_offset) {
  Reader r{bytes, name};
  r.need(4, "magic");
  CCC_CHECK(std::memcmp(bytes.data(), kMagic, 4) == 0, name, ": not a ccc compressed file (bad magic)");
  r.pos = 4;
  Header h;
  h.version = r.num<uint16_t>("version");
  CCC_CHECK(h.version == kFormatVersion, name, ": format version ", h.version, " is not supported (this ccc reads version ",
            kFormatVersion, ")");
  for (auto& b : h.fingerprint) b = r.num<uint8_t>("model fingerprint");
  h.tokenizer_kind = r.str("tokenizer kind");
  h.model_hint = r.str("model hint");
  h.runtime_id = r.str("runtime id");
  h.original_bytes = r.num<uint64_t>("original length");
  h.checksum = r.num<uint64_t>("checksum");
  const uint32_t n_streams = r.num<uint32_t>("stream count");
  h.n_groups = r.num<uint32_t>("group count");
  h.window = r.num<uint32_t>("window");
  h.stride = r.num<uint32_t>("stride");
  h.total_log2 = r.num<uint8_t>("cdf total");
  // bound the stream table by what the file can hold before allocating it
  r.need(static_cast<size_t>(n_streams) * 24, "stream table");
  h.streams.resize(n_streams);
  for (auto& s : h.streams) {
    s.n_bytes = r.num<uint64_t>("stream bytes");
    s.n_tokens = r.num<uint64_t>("stream tokens");
    s.payload_bytes = r.num<uint64_t>("stream payload length");
  }
  const size_t checked = r.pos;
  const uint64_t stored = r.num<uint64_t>("header checksum");
  CCC_CHECK(stored == xxh64(bytes.substr(0, checked)), name, ": header is corrupt (header checksum mismatch)");
  CCC_CHECK(n_streams >= 1 && h.n_groups >= 1 && h.n_groups <= n_streams, name, ": corrupt header (", n_streams,
            " streams in ", h.n_groups, " groups)");
  CCC_CHECK(h.window >= 2 && h.stride >= 1 && h.stride < h.window, name, ": corrupt header (window ", h.window,
            ", stride ", h.stride, ")");
  CCC_CHECK(h.total_log2 >= 24 && h.total_log2 <= 31, name, ": corrupt header (cdf total 2^", int(h.total_log2), ")");
  uint64_t sum_bytes = 0, sum_payload = 0;
  for (const auto& s : h.streams) {
    CCC_CHECK(s.n_bytes <= h.original_bytes && s.n_tokens <= s.n_bytes + 1 && s.payload_bytes <= bytes.size(), name,
              ": corrupt stream table");
    sum_bytes += s.n_bytes;
    sum_payload += s.payload_bytes;
  }
  CCC_CHECK(sum_bytes == h.original_bytes, name, ": corrupt header (stream lengths sum to ", sum_bytes, ", original is ",
            h.original_bytes, ")");
  const uint64_t rest = bytes.size() - r.pos;
  CCC_CHECK(sum_payload <= rest, name, ": truncated: payload needs ", sum_payload, " bytes, file has ", rest, " after the header");
  CCC_CHECK(sum_payload == rest, name, ": ", rest - sum_payload, " unexpected bytes after the payload");
  *payload_offset = r.pos;
  return h;
}

}  // namespace ccc::compress
