#include "compress/arithmetic_coder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/container.h"
#include "model/base/error.h"
#include "tests/support/test_support.h"

namespace ccc::compress {
namespace {

// The shortest streams: nothing coded (at most one byte of flush, and a decoder on it is in a valid state:
// every target lies inside its total, nothing read past the slack), and one symbol of each size of
// interval, which must decode back from the few bytes the flush leaves.
TEST(ArithmeticCoderTest, RoundTripEmptyInput) {
  ArithmeticEncoder empty;
  const auto none = empty.finish();
  EXPECT_LE(none.size(), 1u);
  EXPECT_EQ(empty.symbols(), 0u);
  ArithmeticDecoder d0(none);
  for (uint64_t total : {uint64_t{2}, uint64_t{1} << 16, kMaxTotal}) EXPECT_LT(d0.target(total), total);
  EXPECT_FALSE(d0.overrun());
  const std::vector<uint64_t> cdf = {0, 1, 1000, (uint64_t{1} << 30) - 1, uint64_t{1} << 30};
  for (size_t sym = 0; sym + 1 < cdf.size(); ++sym) {
    ArithmeticEncoder enc;
    enc.encode(cdf[sym], cdf[sym + 1], cdf.back());
    const auto bytes = enc.finish();
    EXPECT_LE(bytes.size(), 6u) << "symbol " << sym;  // ≤ 30 bits of information + the flush
    ArithmeticDecoder dec(bytes);
    EXPECT_EQ(dec.decode_symbol(cdf), sym);
    EXPECT_FALSE(dec.overrun());
  }
}

TEST(ArithmeticCoderTest, RoundTripRandomSymbolsNearEntropy) {
  std::mt19937_64 rng(1);
  const int V = 300;
  std::vector<double> probs(V);
  for (auto& p : probs) p = std::pow(std::uniform_real_distribution<double>(0, 1)(rng), 4);
  auto cdf = cdf_from_probs(probs, uint64_t{1} << 30);
  ASSERT_EQ(cdf.back(), uint64_t{1} << 30);
  std::discrete_distribution<int> pick(probs.begin(), probs.end());
  std::vector<int> syms(20000);
  double ideal_bits = 0;
  ArithmeticEncoder enc;
  for (auto& s : syms) {
    s = pick(rng);
    enc.encode(cdf[s], cdf[s + 1], cdf.back());
    ideal_bits -= std::log2(static_cast<double>(cdf[s + 1] - cdf[s]) / cdf.back());
  }
  auto bytes = enc.finish();
  EXPECT_LE(8.0 * bytes.size(), ideal_bits + 16);  // within 2 bytes of -sum log2 q
  EXPECT_GE(8.0 * bytes.size(), ideal_bits - 1);
  ArithmeticDecoder dec(bytes);
  for (int s : syms) ASSERT_EQ(dec.decode_symbol(cdf), static_cast<size_t>(s));
}

TEST(ArithmeticCoderTest, ExtremeProbabilitiesRoundTrip) {
  // one symbol with almost all mass, others at the floor of 1; code the rare ones too
  std::vector<double> probs(50000, 0.0);
  probs[7] = 1.0;
  auto cdf = cdf_from_probs(probs, uint64_t{1} << 24);
  for (size_t i = 0; i + 1 < cdf.size(); ++i) ASSERT_GE(cdf[i + 1] - cdf[i], 1u);
  std::vector<int> syms;
  for (int i = 0; i < 3000; ++i) syms.push_back(i % 10 == 0 ? (i * 7919) % 50000 : 7);
  ArithmeticEncoder enc;
  for (int s : syms) enc.encode(cdf[s], cdf[s + 1], cdf.back());
  auto bytes = enc.finish();
  ArithmeticDecoder dec(bytes);
  for (int s : syms) ASSERT_EQ(dec.decode_symbol(cdf), static_cast<size_t>(s));
}

TEST(ArithmeticCoderTest, CdfIsDeterministicAndFloored) {
  std::vector<double> probs = {0.5, 0.25, 0.25, 0.0, 1e-30};
  auto a = cdf_from_probs(probs, 1 << 24), b = cdf_from_probs(probs, 1 << 24);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.back(), 1u << 24);
  for (size_t i = 0; i + 1 < a.size(); ++i) EXPECT_GE(a[i + 1] - a[i], 1u);
  EXPECT_THROW(cdf_from_probs(probs, 3), std::invalid_argument);
}

// The definition, one element at a time (the CDF's exact integers are part of the file format: the
// vectorised implementation must reproduce them on every input).
std::vector<uint64_t> cdf_by_definition(const std::vector<double>& probs, uint64_t total) {
  const size_t n = probs.size();
  double sum = 0;
  for (double p : probs) sum += p;
  const uint64_t spare = total - n;
  std::vector<uint64_t> freq(n);
  uint64_t used = 0;
  size_t argmax = 0;
  for (size_t i = 0; i < n; ++i) {
    const double q = (sum > 0 && std::isfinite(sum)) ? probs[i] / sum : 1.0 / static_cast<double>(n);
    uint64_t f = static_cast<uint64_t>(std::floor(std::max(0.0, q) * static_cast<double>(spare)));
    if (f > spare) f = spare;
    freq[i] = f;
    used += f;
    if (probs[i] > probs[argmax]) argmax = i;
  }
  while (used > spare)
    for (size_t i = 0; i < n && used > spare; ++i)
      if (freq[i] > 0) --freq[i], --used;
  freq[argmax] += spare - used;
  std::vector<uint64_t> cdf(n + 1, 0);
  for (size_t i = 0; i < n; ++i) cdf[i + 1] = cdf[i] + freq[i] + 1;
  return cdf;
}

TEST(ArithmeticCoderTest, CdfEqualsItsDefinitionExactly) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  int cases = 0;
  for (size_t n : {1, 2, 3, 4, 5, 7, 8, 9, 31, 256, 257, 300, 512}) {
    for (uint64_t total : {uint64_t{1} << 16, uint64_t{1} << 24, uint64_t{1} << 30, kMaxTotal}) {
      if (total < n) continue;
      for (int kind = 0; kind < 8; ++kind) {
        std::vector<double> p(n);
        for (auto& x : p) x = std::exp(-30 * u(rng));  // softmax numerators: (0, 1]
        if (kind == 1) for (auto& x : p) x = u(rng) < 0.5 ? 0.0 : x;  // zeros
        if (kind == 2) p[rng() % n] = 1e300;                          // one dominant
        if (kind == 3) std::fill(p.begin(), p.end(), 0.0);            // uniform fallback
        if (kind == 4) p[rng() % n] = INFINITY;                       // infinite sum: uniform
        if (kind == 5) p[rng() % n] = NAN;                            // NaN sum: uniform
        if (kind == 6) for (auto& x : p) x = 1e-310 * u(rng);         // subnormal
        if (kind == 7) for (auto& x : p) x = std::pow(u(rng), 8);     // skewed
        ASSERT_EQ(cdf_from_probs(p, total), cdf_by_definition(p, total)) << "n " << n << " total " << total << " kind " << kind;
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 300);
}

TEST(ArithmeticCoderTest, RowsOfCdfsEqualOneRowAtATime) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t n : {1, 3, 8, 256, 257}) {
    for (size_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {
      std::vector<double> p(rows * n);
      for (size_t r = 0; r < rows; ++r) {
        double* row = p.data() + r * n;
        for (size_t i = 0; i < n; ++i) row[i] = std::exp(-30 * u(rng));
        switch (r % 5) {  // a different kind per row, so one block of four mixes them
          case 1: row[rng() % n] = 1e300; break;
          case 2: std::fill(row, row + n, 0.0); break;
          case 3: row[rng() % n] = NAN; break;
          case 4: for (size_t i = 0; i < n; ++i) row[i] = 1e-310 * u(rng); break;
          default: break;
        }
      }
      const uint64_t total = uint64_t{1} << 30;
      std::vector<uint64_t> got(rows * (n + 1), 7);
      cdf_from_probs_rows(p.data(), rows, n, total, got.data());
      for (size_t r = 0; r < rows; ++r) {
        const std::vector<double> row(p.begin() + r * n, p.begin() + (r + 1) * n);
        const auto want = cdf_from_probs(row, total);
        ASSERT_EQ(std::vector<uint64_t>(got.begin() + r * (n + 1), got.begin() + (r + 1) * (n + 1)), want)
            << "n " << n << " rows " << rows << " row " << r;
      }
    }
  }
  std::vector<double> p(4, 1.0);
  std::vector<uint64_t> c(10);
  EXPECT_THROW(cdf_from_probs_rows(p.data(), 2, 2, 1, c.data()), std::invalid_argument);
}

TEST(ArithmeticCoderTest, RejectsInvalidIntervals) {
  ArithmeticEncoder enc;
  EXPECT_THROW(enc.encode(5, 5, 10), std::invalid_argument);
  EXPECT_THROW(enc.encode(0, 11, 10), std::invalid_argument);
  EXPECT_THROW(enc.encode(0, 1, kMaxTotal + 1), std::invalid_argument);
}

}  // namespace
}  // namespace ccc::compress

namespace ccc::compress {
namespace {

// A forged header (checksum recomputed: XXH64 is public) cannot make the decoder allocate more rows per
// group than kMaxStreamsPerGroup, nor more streams than original bytes.
TEST(ContainerTest, ForgedStreamCountsAreRefusedBeforeDecoding) {
  auto forge = [](uint64_t original, uint64_t streams, uint32_t groups) {
    Header h;
    h.tokenizer_kind = "byte";
    h.original_bytes = original;
    h.n_groups = groups;
    h.window = 128;
    h.streams.assign(streams, StreamInfo{});
    for (uint64_t i = 0; i < streams; ++i) {
      const auto [a, b] = segment_range(original, streams, i);
      h.streams[i].n_bytes = b - a;
      h.streams[i].n_tokens = b - a;
    }
    h.group_bytes.assign(groups, 1);
    return serialize_header(h) + std::string(groups, '\0');
  };
  size_t off = 0;
  EXPECT_NO_THROW(parse_container(forge(1000000, 512, 2), "ok.ccc", &off));
  test::expect_error([&] { parse_container(forge(1000000, 2000, 1), "x.ccc", &off); }, {"more than 256 per group"});
  test::expect_error([&] { parse_container(forge(10, 2000, 100), "y.ccc", &off); }, {"2000 streams for 10 bytes"});
}

}  // namespace
}  // namespace ccc::compress
