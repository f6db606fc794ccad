#include "compress/container.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "model/base/error.h"

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

const char* frame_mode_name(FrameMode m) {
  switch (m) {
    case FrameMode::kStored: return "stored";
    case FrameMode::kPure: return "pure";
    case FrameMode::kMixed: return "mixed";
    case FrameMode::kContext: return "context";
  }
  return "?";
}

namespace {

uint64_t varint_size(uint64_t v) {
  uint64_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

struct Writer {
  std::string s;
  void var(uint64_t v) {  // LEB128
    while (v >= 0x80) {
      s.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    s.push_back(static_cast<char>(v));
  }
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

struct NeedMore {};  // a frame's header continues past the bytes read so far

struct Reader {
  std::string_view b;
  const std::string& name;
  size_t pos = 0;
  bool partial = false;  // b may be a prefix of the file: running out means "read more", not "truncated"
  void need(size_t n, const char* field) {
    if (partial && !(n <= b.size() && pos <= b.size() - n)) throw NeedMore{};
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
  uint64_t var(const char* field) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const uint8_t byte = num<uint8_t>(field);
      CCC_CHECK(shift < 63 || byte <= 1, name, ": corrupt header field '", field, "' (varint overflow)");
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
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

uint64_t stored_frame_size(uint64_t n) { return n + kStoredOverhead + varint_size(n); }

std::string stored_frame(std::string_view original) {
  Header h;
  h.mode = FrameMode::kStored;
  h.original_bytes = original.size();
  h.checksum = xxh64(original);
  std::string out = serialize_header(h);
  out += original;
  return out;
}

std::string serialize_header(const Header& h) {
  Writer w;
  w.s.append(kMagic, 4);
  w.num<uint16_t>(h.version);
  if (h.version >= 4) w.num<uint8_t>(static_cast<uint8_t>(h.mode));
  if (h.mode == FrameMode::kStored) {
    CCC_CHECK(h.version >= 4, "container: stored frames need version 4");
    w.var(h.original_bytes);
    w.num<uint64_t>(h.checksum);
    return w.s;
  }
  if (h.mode == FrameMode::kContext) {
    CCC_CHECK(h.group_bytes.size() == 1, "container: a context frame has one payload");
    w.var(h.original_bytes);
    w.num<uint64_t>(h.checksum);
    w.num<uint8_t>(h.mixer_version);
    w.num<uint8_t>(h.table_bits);
    w.var(h.group_bytes[0]);
    return w.s;
  }
  for (uint8_t b : h.fingerprint) w.num<uint8_t>(b);
  w.str(h.tokenizer_kind);
  w.str(h.model_hint);
  w.num<uint64_t>(h.runtime_hash);
  w.var(h.original_bytes);
  w.num<uint64_t>(h.checksum);
  w.var(h.streams.size());
  w.var(h.n_groups);
  w.num<uint8_t>(static_cast<uint8_t>(h.policy));
  w.var(h.window);
  w.var(h.stride);
  w.num<uint8_t>(h.total_log2);
  if (h.mode == FrameMode::kMixed) {
    w.num<uint8_t>(h.mixer_version);
    w.num<uint8_t>(h.table_bits);
  }
  for (const auto& s : h.streams) w.var(s.n_bytes + kTokenSlack - s.n_tokens);
  if (h.mode == FrameMode::kMixed) {
    CCC_CHECK(h.group_bytes.size() == 1, "container: a mixed frame has one payload");
    w.var(h.group_bytes[0]);
  } else {
    for (size_t g = 0; g < h.group_bytes.size(); ++g) {
      const bool raw = g < h.group_raw.size() && h.group_raw[g];
      CCC_CHECK(!raw || h.version >= 4, "container: raw groups need version 4");
      w.var(h.version >= 4 ? (h.group_bytes[g] << 1) | (raw ? 1 : 0) : h.group_bytes[g]);
    }
  }
  w.num<uint64_t>(xxh64(w.s));
  return w.s;
}

namespace {

// The header of the frame at the start of `bytes`; *payload_offset = its length, *payload = Σ group bytes.
Header parse_header(std::string_view bytes, const std::string& name, size_t* payload_offset, uint64_t* payload,
                    bool partial) {
  Reader r{bytes, name};
  r.partial = partial;
  r.need(4, "magic");
  CCC_CHECK(std::memcmp(bytes.data(), kMagic, 4) == 0, name, ": not a ccc compressed file (bad magic)");
  r.pos = 4;
  Header h;
  h.version = r.num<uint16_t>("version");
  CCC_CHECK(h.version >= kOldestVersion && h.version <= kFormatVersion, name, ": format version ", h.version,
            " is not supported (this ccc reads versions ", kOldestVersion, " to ", kFormatVersion, ")");
  if (h.version >= 4) {
    const uint8_t mode = r.num<uint8_t>("frame mode");
    CCC_CHECK(mode <= 3, name, ": corrupt header (frame mode ", int(mode), ")");
    h.mode = static_cast<FrameMode>(mode);
  }
  if (h.mode == FrameMode::kStored) {
    h.original_bytes = r.var("original length");
    CCC_CHECK(h.original_bytes <= kMaxFrameBytes, name, ": corrupt header (a stored frame of ", h.original_bytes,
              " bytes; frames hold at most ", kMaxFrameBytes, ")");
    h.checksum = r.num<uint64_t>("checksum");
    h.n_groups = 0;
    *payload_offset = r.pos;
    *payload = h.original_bytes;
    return h;
  }
  if (h.mode == FrameMode::kContext) {
    h.original_bytes = r.var("original length");
    CCC_CHECK(h.original_bytes <= kMaxFrameBytes, name, ": corrupt header (a frame of ", h.original_bytes,
              " bytes; frames hold at most ", kMaxFrameBytes, ")");
    h.checksum = r.num<uint64_t>("checksum");
    h.mixer_version = r.num<uint8_t>("mixer version");
    h.table_bits = r.num<uint8_t>("mixer table bits");
    const uint64_t g = r.var("payload length");
    CCC_CHECK(g <= 2 * h.original_bytes + 64, name, ": corrupt header (", g, " payload bytes for ", h.original_bytes,
              " original bytes)");
    CCC_CHECK(h.original_bytes <= kMaxBytesPerMixedPayloadByte * (g + 16), name, ": corrupt header (", h.original_bytes,
              " bytes cannot be coded in ", g, " payload bytes)");
    h.n_groups = 0;
    h.group_bytes = {g};
    *payload_offset = r.pos;
    *payload = g;
    return h;
  }
  for (auto& b : h.fingerprint) b = r.num<uint8_t>("model fingerprint");
  h.tokenizer_kind = r.str("tokenizer kind");
  h.model_hint = r.str("model hint");
  h.runtime_hash = r.num<uint64_t>("runtime hash");
  h.original_bytes = r.var("original length");
  CCC_CHECK(h.original_bytes <= kMaxFrameBytes, name, ": corrupt header (a frame of ", h.original_bytes,
            " bytes; frames hold at most ", kMaxFrameBytes, ")");
  h.checksum = r.num<uint64_t>("checksum");
  const uint64_t n_streams = r.var("stream count");
  const uint64_t n_groups = r.var("group count");
  const uint8_t policy = r.num<uint8_t>("window policy");
  const uint64_t window = r.var("window"), stride = r.var("stride");
  h.total_log2 = r.num<uint8_t>("cdf total");
  if (h.mode == FrameMode::kMixed) {
    h.mixer_version = r.num<uint8_t>("mixer version");
    h.table_bits = r.num<uint8_t>("mixer table bits");
  }
  // every table entry takes at least one byte: bound the tables by what the file holds before allocating
  CCC_CHECK(n_streams >= 1 && n_groups >= 1 && n_groups <= n_streams, name, ": corrupt header (", n_streams,
            " streams in ", n_groups, " groups)");
  CCC_CHECK(n_streams <= std::max<uint64_t>(1, h.original_bytes), name, ": corrupt header (", n_streams,
            " streams for ", h.original_bytes, " bytes)");
  CCC_CHECK((n_streams + n_groups - 1) / n_groups <= kMaxStreamsPerGroup, name, ": corrupt header (", n_streams,
            " streams in ", n_groups, " groups: more than ", kMaxStreamsPerGroup, " per group)");
  r.need(n_streams, "stream table");
  r.need(n_streams + (h.mode == FrameMode::kMixed ? 1 : n_groups), "group table");
  h.n_groups = static_cast<uint32_t>(n_groups);
  CCC_CHECK(policy <= 1, name, ": corrupt header (window policy ", int(policy), ")");
  h.policy = static_cast<WindowKind>(policy);
  CCC_CHECK(window >= 2 && window < (1u << 24), name, ": corrupt header (window ", window, ")");
  CCC_CHECK(h.policy == WindowKind::kRolling ? stride == 0 : stride >= 1 && stride < window, name,
            ": corrupt header (window ", window, ", stride ", stride, ")");
  h.window = static_cast<uint32_t>(window);
  h.stride = static_cast<uint32_t>(stride);
  CCC_CHECK(h.total_log2 >= 24 && h.total_log2 <= 31, name, ": corrupt header (cdf total 2^", int(h.total_log2), ")");
  h.streams.resize(n_streams);
  for (uint64_t i = 0; i < n_streams; ++i) {
    auto& s = h.streams[i];
    const auto [a, b] = segment_range(h.original_bytes, n_streams, i);
    s.n_bytes = b - a;
    const uint64_t missing = r.var("stream tokens");
    CCC_CHECK(missing <= s.n_bytes + kTokenSlack, name, ": corrupt stream table (stream ", i, ")");
    s.n_tokens = s.n_bytes + kTokenSlack - missing;
  }
  const bool mixed = h.mode == FrameMode::kMixed;
  h.group_bytes.resize(mixed ? 1 : n_groups);
  h.group_raw.assign(mixed ? 0 : n_groups, 0);
  uint64_t sum_payload = 0;
  for (size_t i = 0; i < h.group_bytes.size(); ++i) {
    auto& g = h.group_bytes[i];
    g = r.var("group payload length");
    if (!mixed && h.version >= 4) {
      h.group_raw[i] = static_cast<uint8_t>(g & 1);
      g >>= 1;
    }
    // a frame's payload is bounded by what its original can justify (so a forged length cannot make a
    // streaming reader buffer gigabytes): at most 4 bytes per original byte and 64 KiB per group
    CCC_CHECK(g <= 4 * h.original_bytes + 65536, name, ": corrupt group table (", g, " payload bytes for ",
              h.original_bytes, " original bytes)");
    CCC_CHECK(partial || g <= bytes.size(), name, ": corrupt group table");
    sum_payload += g;
  }
  if (mixed)
    CCC_CHECK(h.original_bytes <= kMaxBytesPerMixedPayloadByte * (h.group_bytes[0] + 16), name, ": corrupt header (",
              h.original_bytes, " bytes cannot be coded in ", h.group_bytes[0], " payload bytes)");
  if (!mixed) {  // a raw group holds exactly its streams' bytes
    for (uint64_t g = 0; g < n_groups; ++g) {
      if (!h.group_raw[g]) continue;
      uint64_t bytes_in = 0;
      for (uint64_t s = g * n_streams / n_groups; s < (g + 1) * n_streams / n_groups; ++s) bytes_in += h.streams[s].n_bytes;
      CCC_CHECK(h.group_bytes[g] == bytes_in, name, ": corrupt group table (raw group ", g, " of ", h.group_bytes[g],
                " bytes holds streams of ", bytes_in, ")");
    }
  }
  const size_t checked = r.pos;
  const uint64_t stored = r.num<uint64_t>("header checksum");
  CCC_CHECK(stored == xxh64(bytes.substr(0, checked)), name, ": header is corrupt (header checksum mismatch)");
  *payload_offset = r.pos;
  *payload = sum_payload;
  return h;
}

}  // namespace

Header parse_container(std::string_view bytes, const std::string& name, size_t* payload_offset) {
  uint64_t sum_payload = 0;
  Header h = parse_header(bytes, name, payload_offset, &sum_payload, false);
  const uint64_t rest = bytes.size() - *payload_offset;
  CCC_CHECK(sum_payload <= rest, name, ": truncated: payload needs ", sum_payload, " bytes, file has ", rest, " after the header");
  CCC_CHECK(sum_payload == rest, name, ": ", rest - sum_payload, " unexpected bytes after the payload");
  return h;
}

uint64_t frame_size(std::string_view bytes, const std::string& name) {
  try {
    size_t header = 0;
    uint64_t payload = 0;
    parse_header(bytes, name, &header, &payload, true);
    return header + payload;
  } catch (const NeedMore&) {
    return 0;
  }
}


}  // namespace ccc::compress
