#pragma once
// Adaptive context mixing around a language model (the mixed coding mode of the .ccc container).
//
// Each byte is coded as 8 binary decisions, most significant bit first. Every decision is predicted by
//   - the language model: p(bit | earlier bits of this byte), summed from its integer CDF over the
//     byte's subtree (the model stays the main input; its mixer weight starts at 1);
//   - adaptive byte-context models of order 0, 1, 2, 3, 4, 6 and a word model (letters of the current
//     word): counters with an adaptive rate, order 0/1 direct, the others hashed into 64-byte buckets
//     (one bucket per context and nibble, checked by a 16-bit tag, two-way associative);
//   - a match model: the byte that followed the longest earlier occurrence (≥ kMinMatch bytes, in any
//     stream already coded) of the current context, with the match length as its confidence;
// mixed by two online logistic mixers (weights chosen by the partial byte and by the model's confidence
// and the match state; learning rate decaying with the bytes coded), then refined by two adaptive
// probability maps (order 0 and order 1). lpaq1 / paq8 describe this family of designs; this is our own.
//
// Everything adaptive is integer arithmetic, so encoder and decoder agree bit for bit on any machine.
// The state spans all streams of a frame: every stream has its own history (its contexts are its own
// bytes), the tables are shared, and bytes are coded in the lockstep order of the LM codec (step i:
// stream 0, 1, …, B−1), so the statistics and the match model see everything coded before.
// Memory: 64 · 2^table_bits bytes of hashed buckets + 256 KB (order 1) + 4 · 2^match_bits bytes + the
// streams' histories (the frame itself). No torch here.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compress/arithmetic_coder.h"

namespace ccc::compress {

/// Version of the mixing design recorded in mixed-mode headers (a decoder refuses another).
constexpr uint8_t kMixerVersion = 1;
/// Bucket-table size range (log2 of the bucket count; 64 bytes each): 2^12 = 256 KB … 2^20 = 64 MB.
constexpr int kMinTableBits = 12;
constexpr int kMaxTableBits = 20;
/// Shortest earlier occurrence the match model follows.
constexpr int kMinMatch = 6;

/// Bucket-table size for a frame of `n_bytes`: about 4 buckets per byte, within [kMinTableBits, kMaxTableBits].
int mixer_table_bits(uint64_t n_bytes);

/// Bits of one coding run, split by predictor (reporting only: doubles, never fed back into coding).
struct MixerStats {
  double mix_bits = 0;  ///< −log2 of the coded (mixed) probabilities: the payload up to the coder's rounding
  double lm_bits = 0;   ///< −log2 p_LM(byte) under the model's integer CDF (what pure mode codes)
  double cm_bits = 0;   ///< the same mixer and maps without the LM input (context models alone); when shadowed
  uint64_t bytes = 0;
};

class ContextMixer {
 public:
  /// `streams`: the frame's stream count; `stream_bytes[s]`: bytes stream s will code (histories are
  /// reserved); `table_bits`: see mixer_table_bits; `shadow`: also run the context models alone for
  /// MixerStats::cm_bits (about 1.3× the mixing work).
  ContextMixer(const std::vector<uint64_t>& stream_bytes, int table_bits, bool shadow);
  ~ContextMixer();
  ContextMixer(const ContextMixer&) = delete;
  ContextMixer& operator=(const ContextMixer&) = delete;

  /// Codes `byte` as the next byte of stream `s`. `cdf` is the model's cumulative frequencies over its
  /// output vocabulary (byte b = token b; entries cdf[0..256] are read, tokens ≥ 256 are never coded)
  /// with total `total` = cdf[V]; nullptr = no model (the context models alone).
  void encode(ArithmeticEncoder& enc, int64_t s, const uint64_t* cdf, uint64_t total, uint8_t byte);
  /// Decodes the next byte of stream `s` (the same calls as the encoder, in the same order).
  uint8_t decode(ArithmeticDecoder& dec, int64_t s, const uint64_t* cdf, uint64_t total);

  const MixerStats& stats() const { return stats_; }
  /// Bytes of tables and histories this mixer holds (the bound the docs state).
  uint64_t memory_bytes() const;

 private:
  struct State;
  template <typename CodeBit>
  uint8_t code_byte(int64_t s, const uint64_t* cdf, uint64_t total, int known, CodeBit&& code_bit);
  std::unique_ptr<State> st_;
  MixerStats stats_;
};

/// The context models alone over `input` as one stream (no model): the payload of a context frame.
/// `stats` (optional) receives the mixer's figures.
std::string cm_encode(std::string_view input, int table_bits, MixerStats* stats = nullptr);
/// Restores `n` bytes from a context frame's payload; throws ccc::Error naming `name` when the payload
/// runs out (corruption).
std::string cm_decode(std::string_view payload, uint64_t n, int table_bits, const std::string& name);

}  // namespace ccc::compress
