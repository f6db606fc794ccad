#include "compress/arithmetic_coder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "compress/container.h"
#include "model/base/error.h"

namespace ccc::compress {
namespace {

TEST(ArithmeticCoderTest, RoundTripEmptyInput) {
  ArithmeticEncoder enc;
  auto bytes = enc.finish();
  EXPECT_LE(bytes.size(), 1u);
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
  try {
    parse_container(forge(1000000, 2000, 1), "x.ccc", &off);
    ADD_FAILURE() << "2000 streams in one group accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 256 per group"), std::string::npos) << e.what();
  }
  try {
    parse_container(forge(10, 2000, 100), "y.ccc", &off);
    ADD_FAILURE() << "more streams than bytes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2000 streams for 10 bytes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ccc::compress
