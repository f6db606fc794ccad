// The context mixer (compress/context_mixer.h) and the frames of the v4 container that need no model:
// exactness, determinism, what each input earns, and the parser's checks.

#include "compress/context_mixer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "compress/container.h"
#include "model/base/error.h"
#include "tests/support/test_support.h"

namespace ccc::compress {
namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng() & 0xff));
  return s;
}

std::string words(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* w[] = {"the ", "mixer ", "learns ", "from ", "the ", "file ", "as ", "it ", "passes", ". ", "\n"};
  std::string s;
  while (s.size() < n) s += w[rng() % 11];
  return s.substr(0, n);
}

// A stand-in language model: a fixed integer CDF over 257 tokens (bytes and BOS) that gives the true
// next byte probability `p_true` and spreads the rest evenly (or, with p_true < 0, a uniform one).
std::vector<uint64_t> fake_cdf(int true_byte, double p_true) {
  std::vector<uint64_t> cdf(258, 0);
  const uint64_t total = uint64_t{1} << 30;
  for (int t = 0; t < 257; ++t) {
    const double p = p_true < 0 ? 1.0 / 257 : (t == true_byte ? p_true : (1 - p_true) / 256);
    cdf[t + 1] = cdf[t] + std::max<uint64_t>(1, static_cast<uint64_t>(p * static_cast<double>(total)));
  }
  return cdf;
}

struct Coded {
  std::string payload;
  MixerStats stats;
};

// Codes `data` as `streams` interleaved streams (step i: stream 0, 1, ...), as the codec orders them.
Coded encode(const std::string& data, int streams, double p_true, bool shadow = false, int table_bits = 14) {
  std::vector<uint64_t> sizes;
  for (int s = 0; s < streams; ++s) sizes.push_back(segment_range(data.size(), streams, s).second - segment_range(data.size(), streams, s).first);
  ContextMixer cm(sizes, table_bits, shadow);
  ArithmeticEncoder enc;
  const uint64_t steps = *std::max_element(sizes.begin(), sizes.end());
  for (uint64_t i = 0; i < steps; ++i)
    for (int s = 0; s < streams; ++s) {
      if (i >= sizes[s]) continue;
      const uint8_t b = static_cast<uint8_t>(data[segment_range(data.size(), streams, s).first + i]);
      if (p_true == 0) {
        cm.encode(enc, s, nullptr, 0, b);
      } else {
        const auto cdf = fake_cdf(b, p_true);
        cm.encode(enc, s, cdf.data(), cdf[257], b);
      }
    }
  return {enc.finish(), cm.stats()};
}

// Decodes what encode(data, streams, 0) coded (the context models alone).
std::string decode(const std::string& payload, size_t n, int streams, int table_bits = 14) {
  std::vector<uint64_t> sizes;
  for (int s = 0; s < streams; ++s) sizes.push_back(segment_range(n, streams, s).second - segment_range(n, streams, s).first);
  ContextMixer cm(sizes, table_bits, false);
  ArithmeticDecoder dec(payload);
  std::vector<std::string> parts(streams);
  const uint64_t steps = n == 0 ? 0 : *std::max_element(sizes.begin(), sizes.end());
  for (uint64_t i = 0; i < steps; ++i)
    for (int s = 0; s < streams; ++s) {
      if (i >= sizes[s]) continue;
      parts[s].push_back(static_cast<char>(cm.decode(dec, s, nullptr, 0)));
    }
  std::string out;
  for (auto& p : parts) out += p;
  return out;
}

TEST(ContextMixer, RoundTripsAndIsDeterministicOnEveryKindOfInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""}, {"one byte", "x"}, {"random", random_bytes(5000, 1)}, {"text", words(6000, 2)},
      {"zeros", std::string(3000, '\0')}, {"all bytes", [] { std::string s; for (int i = 0; i < 256; ++i) s.push_back(char(i)); return s; }()}};
  for (const auto& [label, data] : cases) {
    for (int streams : {1, 3}) {
      if (data.size() < static_cast<size_t>(streams)) continue;
      const auto a = encode(data, streams, 0), b = encode(data, streams, 0, /*shadow=*/true);
      EXPECT_EQ(a.payload, b.payload) << label << ": the shadow run changed the code";
      EXPECT_EQ(decode(a.payload, data.size(), streams), data) << label << " streams " << streams;
    }
  }
}

// The model input: with a model that gives the true byte p = 0.9, the mix costs close to the model's own
// bits (−log2 0.9 = 0.152 per byte) and far below the context models alone; the payload is the mix's bits.
TEST(ContextMixer, AStrongModelInputIsFollowedAndBitsAreAccounted) {
  const std::string data = random_bytes(4000, 7);  // nothing for the context models to learn
  const auto c = encode(data, 2, 0.9, /*shadow=*/true);
  const double n = static_cast<double>(data.size());
  EXPECT_NEAR(c.stats.lm_bits / n, -std::log2(0.9), 1e-3);
  EXPECT_LT(c.stats.mix_bits / n, c.stats.lm_bits / n + 0.08) << "the mixer does not follow the model";
  EXPECT_GT(c.stats.cm_bits / n, 7.5) << "the context models alone should not predict random bytes";
  EXPECT_NEAR(8.0 * static_cast<double>(c.payload.size()), c.stats.mix_bits, 16.0);
  // a useless model (uniform) is outweighed: the mix is no worse than 8.2 bits per random byte
  const auto u = encode(data, 2, -1);
  EXPECT_LT(8.0 * static_cast<double>(u.payload.size()) / n, 8.2);
}

// Adaptation: repeats are learned from the file itself (the match model across streams), text from its
// own statistics.
TEST(ContextMixer, LearnsRepeatsAndTextFromTheFile) {
  const std::string block = random_bytes(2000, 9);
  std::string repeated;
  for (int i = 0; i < 6; ++i) repeated += block;
  const auto r = encode(repeated, 1, 0);
  const double first = 8.0 * 2000;  // the first copy cannot be predicted
  EXPECT_LT(8.0 * static_cast<double>(r.payload.size()) - first, 0.4 * 5 * 2000) << "copies cost more than 0.4 bits/byte";
  // two streams: the second's copy of the first's bytes is found in the other stream's history
  const std::string two = block + block;
  const auto t = encode(two, 2, 0);
  EXPECT_LT(8.0 * static_cast<double>(t.payload.size()), first + 0.6 * 2000);
  const std::string text = words(20000, 3);
  EXPECT_LT(8.0 * static_cast<double>(encode(text, 1, 0).payload.size()) / text.size(), 1.0);
}

TEST(ContextMixer, ContextFramePayloadRoundTripsAndCorruptionIsCaught) {
  for (const std::string& data : {std::string(), words(7000, 5), random_bytes(3000, 6)}) {
    const int bits = mixer_table_bits(data.size());
    MixerStats st;
    const std::string p = cm_encode(data, bits, &st);
    EXPECT_EQ(cm_decode(p, data.size(), bits, "mem"), data);
    EXPECT_NEAR(8.0 * static_cast<double>(p.size()), st.mix_bits, 16.0);
    if (data.size() > 100) {
      std::string bad = p;
      bad[bad.size() / 2] ^= 0x40;
      std::string out;
      try {
        out = cm_decode(bad, data.size(), bits, "bad.ccc");
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bad.ccc"), std::string::npos);
      }
      EXPECT_NE(out, data);
    }
  }
  EXPECT_EQ(mixer_table_bits(0), kMinTableBits);
  EXPECT_EQ(mixer_table_bits(uint64_t{1} << 30), kMaxTableBits);
  test::expect_error([] { ContextMixer({1}, kMaxTableBits + 1, false); }, {"table bits"});
}

TEST(Container, StoredAndContextFramesParseAndBoundTheOutput) {
  const std::string data = random_bytes(1000, 4);
  const std::string stored = stored_frame(data);
  EXPECT_EQ(stored.size(), stored_frame_size(data.size()));
  EXPECT_EQ(stored.size(), data.size() + kStoredOverhead + 2);  // varint(1000) is 2 bytes
  size_t off = 0;
  Header h = parse_container(stored, "s.ccc", &off);
  EXPECT_EQ(h.mode, FrameMode::kStored);
  EXPECT_EQ(std::string(stored.substr(off)), data);
  EXPECT_EQ(frame_size(stored, "s.ccc"), stored.size());
  test::expect_error([&] { parse_container(stored.substr(0, stored.size() - 1), "s.ccc", &off); }, {"s.ccc", "truncated"});
  test::expect_error([&] { parse_container(stored + "x", "s.ccc", &off); }, {"s.ccc", "unexpected bytes"});
  std::string bad_mode = stored;
  bad_mode[6] = 7;
  test::expect_error([&] { parse_container(bad_mode, "m.ccc", &off); }, {"m.ccc", "frame mode 7"});
  Header c;
  c.mode = FrameMode::kContext;
  c.original_bytes = 5;
  c.mixer_version = kMixerVersion;
  c.table_bits = kMinTableBits;
  c.group_bytes = {3};
  const std::string ctx = serialize_header(c) + "abc";
  h = parse_container(ctx, "c.ccc", &off);
  EXPECT_EQ(h.mode, FrameMode::kContext);
  EXPECT_EQ(h.group_bytes, std::vector<uint64_t>{3});
  EXPECT_EQ(h.table_bits, kMinTableBits);
  // a frame declaring more bytes than its payload can code (the clamped probabilities' floor) is corrupt
  c.original_bytes = kMaxBytesPerMixedPayloadByte * (3 + 16) + 1;
  test::expect_error([&] { parse_container(serialize_header(c) + "abc", "big.ccc", &off); },
                     {"big.ccc", "cannot be coded in 3 payload bytes"});
  // the floor holds for real data: a megabyte of zeros (the most compressible input) stays within it
  const std::string zeros(1 << 20, '\0');
  const std::string p = cm_encode(zeros, mixer_table_bits(zeros.size()));
  EXPECT_LE(zeros.size(), kMaxBytesPerMixedPayloadByte * p.size());
  c.original_bytes = zeros.size();
  c.group_bytes = {p.size()};
  EXPECT_EQ(parse_container(serialize_header(c) + p, "zeros.ccc", &off).original_bytes, zeros.size());
}

// Version 3 headers (the golden streams) still parse; version 4 pure frames carry raw-group flags, and a
// raw group must hold exactly its streams' bytes.
TEST(Container, Version3StillParsesAndRawGroupsAreChecked) {
  Header h;
  h.version = 3;
  h.original_bytes = 10;
  h.n_groups = 2;
  h.window = 8;
  h.streams = {{5, 5}, {5, 5}};
  h.group_bytes = {1, 1};
  size_t off = 0;
  Header back = parse_container(serialize_header(h) + "ab", "v3.ccc", &off);
  EXPECT_EQ(back.version, 3);
  EXPECT_EQ(back.mode, FrameMode::kPure);
  EXPECT_EQ(back.group_raw, (std::vector<uint8_t>{0, 0}));
  h.version = 4;
  h.group_raw = {0, 1};
  h.group_bytes = {1, 5};
  back = parse_container(serialize_header(h) + "a12345", "v4.ccc", &off);
  EXPECT_EQ(back.group_raw, (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(back.group_bytes, (std::vector<uint64_t>{1, 5}));
  h.group_bytes = {1, 4};
  test::expect_error([&] { parse_container(serialize_header(h) + "a1234", "raw.ccc", &off); }, {"raw.ccc", "raw group 1"});
  h.version = 3;
  EXPECT_THROW(serialize_header(h), Error);  // version 3 has no raw flags
}

}  // namespace
}  // namespace ccc::compress
