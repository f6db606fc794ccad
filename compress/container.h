#pragma once
// The .ccc container: a sequence of frames, each a self-checking header and its payload. A frame is
//   - stored: the original bytes as they are (the floor: a frame is never larger than its input plus
//     kStoredOverhead + a varint of its length);
//   - pure: one arithmetic-coded payload per stream group from the model's distributions alone (the
//     streams of a group interleaved step by step); a group whose code is not smaller than its bytes
//     is stored raw (a flag in the group table);
//   - mixed: one arithmetic code for the whole frame, bits predicted by the context mixer around the
//     model (compress/context_mixer.h);
//   - context: the context mixer alone over the frame as one stream (no model call, no fingerprint).
// The encoder codes a frame the ways it may and keeps the smallest.
// Version 3 (pure frames without raw flags) is still read.
// No torch here; parsing is defensive (every read bounds-checked) and fuzzed (tests/compress/fuzz_container.cpp).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/base/segments.h"

namespace ccc::compress {

constexpr char kMagic[4] = {'C', 'C', 'C', 'Z'};
constexpr uint16_t kFormatVersion = 4;
/// The oldest version this build reads (the golden streams of data/golden are version 3).
constexpr uint16_t kOldestVersion = 3;
/// Bytes a stored frame adds besides the varint of its length: magic 4, version 2, mode 1, checksum 8.
constexpr uint64_t kStoredOverhead = 15;

/// The most bytes a mixed or context frame may declare per payload byte: each binary decision of the
/// mixer costs at least −log2(1 − 32/65536) = 0.000704 bits (its probabilities are clamped to
/// [32, 65504] / 65536), so n bytes need ≥ 0.00563·n bits and n ≤ 1421 × (payload bytes + 8 bytes of
/// the decoder's overrun slack). A header declaring more is corrupt: bounds the work a forged frame causes.
constexpr uint64_t kMaxBytesPerMixedPayloadByte = 1422;

/// How a frame's payload is coded.
enum class FrameMode : uint8_t {
  kStored = 0,  ///< the original bytes
  kPure = 1,    ///< the model's distributions alone (what `ccc bits` measures)
  kMixed = 2,   ///< context mixing around the model (byte-level models)
  kContext = 3, ///< the context models alone, one stream, no model (what wins on data the model has no prior for)
};
const char* frame_mode_name(FrameMode m);
/// A stream may hold at most n_bytes + kTokenSlack coded tokens: a SentencePiece tokenizer's dummy-prefix
/// token codes no input byte (' ' alone is two tokens). Version 3 stores n_bytes + kTokenSlack − n_tokens.
constexpr uint64_t kTokenSlack = 1;
/// Most streams one group may hold: a group is one model batch (one KV-cache row per stream), so this
/// bounds the memory a container can make the decoder allocate per worker thread.
constexpr uint64_t kMaxStreamsPerGroup = 256;

/// How sequences longer than the window are scored.
enum class WindowKind : uint8_t {
  kStrided = 0,  ///< windows of W tokens every S tokens; a new window re-encodes its first W - 1 - S tokens
  kRolling = 1,  ///< rolling KV cache: every token sees the last W - 1 tokens, nothing re-encoded (rotary models)
};

struct StreamInfo {
  uint64_t n_bytes = 0;   ///< bytes of the original this stream codes (derived: segment i = [i·n/B, (i+1)·n/B))
  uint64_t n_tokens = 0;  ///< coded tokens (BOS excluded), at most n_bytes + kTokenSlack
};

struct Header {
  uint16_t version = kFormatVersion;
  FrameMode mode = FrameMode::kPure;
  std::array<uint8_t, 32> fingerprint{};  ///< sha256 of model config + weights + tokenizer
  std::string tokenizer_kind;
  std::string model_hint;     ///< path the encoder loaded the model from (a hint only)
  uint64_t runtime_hash = 0;  ///< XXH64 of the encoder's runtime id (build, LibTorch, BLAS kernel, kernels)
  uint64_t original_bytes = 0;
  uint64_t checksum = 0;      ///< XXH64 (seed 0) of the original
  uint32_t n_groups = 1;      ///< stream groups, each one model batch on one thread and one arithmetic code
  WindowKind policy = WindowKind::kRolling;
  uint32_t window = 0;        ///< context window W (tokens)
  uint32_t stride = 0;        ///< strided policy: window stride S (re-encodes W - 1 - S tokens); rolling: 0
  uint8_t total_log2 = 30;    ///< CDF total = 2^total_log2
  uint8_t mixer_version = 0;  ///< mixed, context: kMixerVersion of the encoder
  uint8_t table_bits = 0;     ///< mixed, context: the context mixer's bucket-table size (log2)
  std::vector<StreamInfo> streams;
  std::vector<uint64_t> group_bytes;  ///< pure: payload length of each group; mixed, context: one entry, the frame's code
  std::vector<uint8_t> group_raw;     ///< pure: 1 where the group's payload is its streams' bytes as they are
};

/// A stored frame of `original` (header and bytes).
std::string stored_frame(std::string_view original);
/// The most bytes a frame of n input bytes takes when stored: n + kStoredOverhead + varint(n).
uint64_t stored_frame_size(uint64_t n);

/// Byte range of segment i of B over n bytes: [i·n/B, (i+1)·n/B) (model/base/segments.h).
using ccc::segment_range;

/// Serialises the header (including its own trailing XXH64); stored frames have no header checksum
/// (their checksum covers the bytes).
std::string serialize_header(const Header& h);

/// Parses a container: the header, then checks that the payloads exactly fill the rest of `bytes`.
/// Throws ccc::Error naming `name` and the field on truncation, corruption or a version mismatch.
/// `payload_offset` receives where the first payload starts.
Header parse_container(std::string_view bytes, const std::string& name, size_t* payload_offset);

/// A .ccc file is one or more frames, each a whole container (header + payload) coding the next part of
/// the input (streaming compress writes one per kFrameBytes of input). Returns the size of the frame at
/// the start of `bytes`, or 0 when `bytes` ends inside that frame's header (read more). Throws
/// ccc::Error naming `name` when the header is corrupt; the header checksum is verified.
uint64_t frame_size(std::string_view bytes, const std::string& name);

/// Input bytes per frame of streaming compress (memory is bounded by one frame, not by the input).
constexpr uint64_t kFrameBytes = uint64_t{16} << 20;
/// The most input bytes one frame may code (a header declaring more is corrupt): bounds what a reader
/// buffers and allocates per frame whatever a forged header says.
constexpr uint64_t kMaxFrameBytes = uint64_t{64} << 20;

uint64_t xxh64(std::string_view bytes);
std::string hex(const std::array<uint8_t, 32>& fp);
std::array<uint8_t, 32> fingerprint_from_hex(const std::string& hex);

}  // namespace ccc::compress
