#pragma once
// Multi-symbol arithmetic coder with 62-bit state (Witten–Neal–Cleary style, carry handled by pending
// bits) over integer cumulative frequencies. No torch here: callers pass integer CDFs.
//
// Coding a symbol of frequency f out of total T costs -log2(f/T) bits plus < 2^-28 bits of rounding
// (the coding interval is kept above 2^60 while T < 2^32); flushing adds at most 2 bits per stream.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::compress {

/// Largest total frequency the coder accepts.
constexpr uint64_t kMaxTotal = uint64_t{1} << 32;

class ArithmeticEncoder {
 public:
  /// Codes the interval [cum_lo, cum_hi) of `total` (0 <= cum_lo < cum_hi <= total <= kMaxTotal).
  void encode(uint64_t cum_lo, uint64_t cum_hi, uint64_t total);
  /// Flushes and returns the coded bytes; the encoder must not be used afterwards.
  std::string finish();
  /// Bits emitted so far (excluding pending ones).
  uint64_t bits_written() const { return n_bits_; }
  /// Symbols encoded so far.
  uint64_t symbols() const { return n_symbols_; }

 private:
  void put_bit(int bit);
  void put_with_pending(int bit);
  uint64_t low_ = 0;
  uint64_t high_ = (uint64_t{1} << 62) - 1;
  uint64_t pending_ = 0;
  std::string out_;
  uint8_t cur_ = 0;
  int n_cur_ = 0;
  uint64_t n_bits_ = 0;
  uint64_t n_symbols_ = 0;
};

class ArithmeticDecoder {
 public:
  /// Decodes from `bytes` (reads past the end as zero bits, which the encoder's flush makes harmless).
  explicit ArithmeticDecoder(std::string_view bytes);
  /// Returns the target count in [0, total) that identifies the next symbol (see decode_symbol).
  uint64_t target(uint64_t total) const;
  /// Consumes the symbol with interval [cum_lo, cum_hi) that contains target(total).
  void consume(uint64_t cum_lo, uint64_t cum_hi, uint64_t total);
  /// Convenience: binary-searches `cdf` (size n+1, cdf[0] = 0, cdf[n] = total, strictly increasing)
  /// and consumes the symbol. Returns its index.
  size_t decode_symbol(const std::vector<uint64_t>& cdf);
  /// True when more bytes were consumed than the stream holds plus the flush slack (corruption).
  bool overrun() const { return pos_bits_ > 8 * bytes_.size() + 64; }

 private:
  int get_bit();
  std::string_view bytes_;
  uint64_t pos_bits_ = 0;
  uint64_t low_ = 0;
  uint64_t high_ = (uint64_t{1} << 62) - 1;
  uint64_t value_ = 0;
};

/// Builds a CDF with total exactly `total` from probabilities: every symbol gets at least 1, the rest is
/// shared by floor(p_i * (total - n)) and the remainder goes to the most probable symbol. Deterministic:
/// fixed summation order, double precision. `probs` need not be normalised (they are divided by their sum).
std::vector<uint64_t> cdf_from_probs(const std::vector<double>& probs, uint64_t total);
/// The same into cdf[0 .. n] without allocating.
void cdf_from_probs(const double* probs, size_t n, uint64_t total, uint64_t* cdf);
/// cdf_from_probs of each of `rows` rows (probs rows x n, cdfs rows x (n + 1)): the same integers, with
/// four rows' sums (a latency-bound add chain each) run side by side.
void cdf_from_probs_rows(const double* probs, size_t rows, size_t n, uint64_t total, uint64_t* cdfs);

}  // namespace ccc::compress
