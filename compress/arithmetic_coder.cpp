#include "compress/arithmetic_coder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ccc::compress {

namespace {
constexpr uint64_t kTop = (uint64_t{1} << 62) - 1;
constexpr uint64_t kHalf = uint64_t{1} << 61;
constexpr uint64_t kQuarter = uint64_t{1} << 60;
__extension__ typedef unsigned __int128 u128;
}  // namespace

void ArithmeticEncoder::put_bit(int bit) {
  cur_ = static_cast<uint8_t>((cur_ << 1) | bit);
  ++n_bits_;
  if (++n_cur_ == 8) {
    out_.push_back(static_cast<char>(cur_));
    cur_ = 0;
    n_cur_ = 0;
  }
}

void ArithmeticEncoder::put_with_pending(int bit) {
  put_bit(bit);
  for (; pending_ > 0; --pending_) put_bit(!bit);
}

void ArithmeticEncoder::encode(uint64_t cum_lo, uint64_t cum_hi, uint64_t total) {
  if (!(cum_lo < cum_hi && cum_hi <= total && total <= kMaxTotal))
    throw std::invalid_argument("arithmetic coder: invalid interval");
  ++n_symbols_;
  const u128 range = static_cast<u128>(high_ - low_) + 1;
  high_ = low_ + static_cast<uint64_t>(range * cum_hi / total) - 1;
  low_ = low_ + static_cast<uint64_t>(range * cum_lo / total);
  for (;;) {
    if (high_ < kHalf) {
      put_with_pending(0);
    } else if (low_ >= kHalf) {
      put_with_pending(1);
      low_ -= kHalf;
      high_ -= kHalf;
    } else if (low_ >= kQuarter && high_ < kHalf + kQuarter) {
      ++pending_;
      low_ -= kQuarter;
      high_ -= kQuarter;
    } else {
      break;
    }
    low_ <<= 1;
    high_ = (high_ << 1) | 1;
  }
}

std::string ArithmeticEncoder::finish() {
  // Two more bits select a point inside [low, high] whatever bits follow (the decoder reads zeros).
  ++pending_;
  put_with_pending(low_ < kQuarter ? 0 : 1);
  while (n_cur_ != 0) put_bit(0);
  return std::move(out_);
}

ArithmeticDecoder::ArithmeticDecoder(std::string_view bytes) : bytes_(bytes) {
  for (int i = 0; i < 62; ++i) value_ = (value_ << 1) | static_cast<uint64_t>(get_bit());
}

int ArithmeticDecoder::get_bit() {
  const uint64_t i = pos_bits_++;
  if (i >= 8 * bytes_.size()) return 0;
  return (static_cast<uint8_t>(bytes_[i >> 3]) >> (7 - (i & 7))) & 1;
}

uint64_t ArithmeticDecoder::target(uint64_t total) const {
  const u128 range = static_cast<u128>(high_ - low_) + 1;
  const u128 offset = static_cast<u128>(value_ - low_) + 1;
  const uint64_t t = static_cast<uint64_t>((offset * total - 1) / range);
  return std::min(t, total - 1);
}

void ArithmeticDecoder::consume(uint64_t cum_lo, uint64_t cum_hi, uint64_t total) {
  const u128 range = static_cast<u128>(high_ - low_) + 1;
  high_ = low_ + static_cast<uint64_t>(range * cum_hi / total) - 1;
  low_ = low_ + static_cast<uint64_t>(range * cum_lo / total);
  for (;;) {
    if (high_ < kHalf) {
    } else if (low_ >= kHalf) {
      low_ -= kHalf;
      high_ -= kHalf;
      value_ -= kHalf;
    } else if (low_ >= kQuarter && high_ < kHalf + kQuarter) {
      low_ -= kQuarter;
      high_ -= kQuarter;
      value_ -= kQuarter;
    } else {
      break;
    }
    low_ <<= 1;
    high_ = (high_ << 1) | 1;
    value_ = ((value_ << 1) | static_cast<uint64_t>(get_bit())) & kTop;
  }
}

size_t ArithmeticDecoder::decode_symbol(const std::vector<uint64_t>& cdf) {
  const uint64_t total = cdf.back();
  const uint64_t t = target(total);
  // first index i with cdf[i+1] > t
  auto it = std::upper_bound(cdf.begin() + 1, cdf.end(), t);
  const size_t sym = static_cast<size_t>(it - cdf.begin()) - 1;
  consume(cdf[sym], cdf[sym + 1], total);
  return sym;
}

namespace {

// freq[i] = min(spare, floor(max(0, q_i) · spare)) with q_i = probs[i] / sum (1 / n when `uniform`);
// returns Σ freq. Every operation is one correctly rounded IEEE operation, so the AVX2 version below
// computes the same integers (floor(x) < 2^52 converts exactly through the 2^52 bias).
uint64_t scaled_floors_scalar(const double* probs, size_t n, double sum, bool uniform, uint64_t spare, uint64_t* freq,
                              size_t from = 0) {
  uint64_t used = 0;
  for (size_t i = from; i < n; ++i) {
    const double q = uniform ? 1.0 / static_cast<double>(n) : probs[i] / sum;
    uint64_t f = static_cast<uint64_t>(std::floor(std::max(0.0, q) * static_cast<double>(spare)));
    if (f > spare) f = spare;
    freq[i] = f;
    used += f;
  }
  return used;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t scaled_floors_avx2(const double* probs, size_t n, double sum, bool uniform,
                                                            uint64_t spare, uint64_t* freq) {
  const __m256d vsum = _mm256_set1_pd(sum), vspare = _mm256_set1_pd(static_cast<double>(spare));
  const __m256d zero = _mm256_setzero_pd(), bias = _mm256_set1_pd(4503599627370496.0);  // 2^52
  const __m256d vuni = _mm256_set1_pd(1.0 / static_cast<double>(n));
  __m256i vused = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d q = uniform ? vuni : _mm256_div_pd(_mm256_loadu_pd(probs + i), vsum);
    // max(q, 0) returns 0 for a NaN q, as std::max(0.0, q) does
    __m256d f = _mm256_floor_pd(_mm256_mul_pd(_mm256_max_pd(q, zero), vspare));
    f = _mm256_min_pd(f, vspare);
    const __m256i fi = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(f, bias)), _mm256_castpd_si256(bias));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(freq + i), fi);
    vused = _mm256_add_epi64(vused, fi);
  }
  alignas(32) uint64_t u[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(u), vused);
  return u[0] + u[1] + u[2] + u[3] + scaled_floors_scalar(probs, n, sum, uniform, spare, freq, i);
}
#endif

bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
#else
  return false;
#endif
}

// The CDF of one row from its sum (probs[0] + probs[1] + ... in index order) and argmax (first maximum).
void cdf_from_sum(const double* probs, size_t n, uint64_t total, double sum, size_t argmax, uint64_t* cdf) {
  const uint64_t spare = total - n;
  uint64_t* freq = cdf + 1;  // frequencies beyond the floor, prefix-summed in place at the end
  const bool uniform = !(sum > 0 && std::isfinite(sum));
#if defined(__x86_64__)
  uint64_t used = cpu_has_avx2() ? scaled_floors_avx2(probs, n, sum, uniform, spare, freq)
                                 : scaled_floors_scalar(probs, n, sum, uniform, spare, freq);
#else
  uint64_t used = scaled_floors_scalar(probs, n, sum, uniform, spare, freq);
#endif
  // floor() never overshoots in exact arithmetic; guard rounding anyway, then give the rest to argmax
  while (used > spare) {
    for (size_t i = 0; i < n && used > spare; ++i)
      if (freq[i] > 0) {
        --freq[i];
        --used;
      }
  }
  freq[argmax] += spare - used;
  cdf[0] = 0;
  for (size_t i = 0; i < n; ++i) cdf[i + 1] = cdf[i] + freq[i] + 1;
}

}  // namespace

void cdf_from_probs(const double* probs, size_t n, uint64_t total, uint64_t* cdf) {
  if (n == 0 || total < n || total > kMaxTotal) throw std::invalid_argument("cdf_from_probs: bad total");
  double sum = 0;
  size_t argmax = 0;
  for (size_t i = 0; i < n; ++i) {  // one pass: the sum's add chain and the argmax compare run side by side
    sum += probs[i];
    if (probs[i] > probs[argmax]) argmax = i;
  }
  cdf_from_sum(probs, n, total, sum, argmax, cdf);
}

void cdf_from_probs_rows(const double* probs, size_t rows, size_t n, uint64_t total, uint64_t* cdfs) {
  if (n == 0 || total < n || total > kMaxTotal) throw std::invalid_argument("cdf_from_probs: bad total");
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const double* p0 = probs + r * n;
    const double *p1 = p0 + n, *p2 = p1 + n, *p3 = p2 + n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // each row's own chain, in index order
    size_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n; ++i) {
      s0 += p0[i];
      s1 += p1[i];
      s2 += p2[i];
      s3 += p3[i];
      if (p0[i] > p0[a0]) a0 = i;
      if (p1[i] > p1[a1]) a1 = i;
      if (p2[i] > p2[a2]) a2 = i;
      if (p3[i] > p3[a3]) a3 = i;
    }
    cdf_from_sum(p0, n, total, s0, a0, cdfs + r * (n + 1));
    cdf_from_sum(p1, n, total, s1, a1, cdfs + (r + 1) * (n + 1));
    cdf_from_sum(p2, n, total, s2, a2, cdfs + (r + 2) * (n + 1));
    cdf_from_sum(p3, n, total, s3, a3, cdfs + (r + 3) * (n + 1));
  }
  for (; r < rows; ++r) cdf_from_probs(probs + r * n, n, total, cdfs + r * (n + 1));
}

std::vector<uint64_t> cdf_from_probs(const std::vector<double>& probs, uint64_t total) {
  std::vector<uint64_t> cdf(probs.size() + 1);
  cdf_from_probs(probs.data(), probs.size(), total, cdf.data());
  return cdf;
}

}  // namespace ccc::compress
