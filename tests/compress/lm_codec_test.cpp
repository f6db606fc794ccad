#include "compress/lm_codec.h"

#include <gtest/gtest.h>

#include <mutex>
#include <random>
#include <set>
#include <tuple>

#include "compress/container.h"
#include "compress/context_mixer.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/kernels/decode_attention.h"
#include "model/scoring/cost_model.h"
#include "model/scoring/streams.h"
#include "tests/support/test_support.h"

namespace ccc::compress {
namespace {

using model::codec_attention_flops;
using model::codec_cache_row_bytes;
using model::codec_kv_cache_bytes;
using model::segmented_bits;
using model::segmented_token_bits;
using model::stream_token_counts;

model::LoadedModel byte_model(uint64_t seed = 1, int64_t n_ctx = 16, bool learned = false) {
  return test::tiny_byte_lm(seed, n_ctx, learned);
}

std::vector<std::pair<std::string, std::string>> inputs() {
  std::mt19937 rng(3);
  std::string random_binary, all_bytes, text;
  for (int i = 0; i < 1500; ++i) random_binary.push_back(static_cast<char>(rng() & 0xff));
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  text = test::unicode_text();
  return {{"empty", ""},
          {"one byte", "x"},
          {"all 256 byte values", all_bytes},
          {"random binary", random_binary},
          {"invalid utf8", std::string("\xff\xfe\xc3\x28 valid \xe2\x82 \x80\x80", 16)},
          {"unicode text spanning many windows", text}};
}

TEST(LmCodecTest, RoundTripIsBitExactForEveryInputStreamCountAndPolicy) {
  auto rotary = byte_model(), learned = byte_model(1, 16, true);
  for (const auto& [label, data] : inputs()) {
    for (int64_t streams : {1, 5}) {
      for (int policy = 0; policy < 3; ++policy) {  // rolling, strided (rotary), strided (learned positions)
        for (bool pure : {true, false}) {
          auto& m = policy == 2 ? learned : rotary;
          CodecOptions o;
          o.streams = streams;
          o.groups = 2;
          o.strided = policy == 1;
          o.pure = pure;
          auto packed = lm_compress(m, data, o);
          size_t off = 0;
          const Header h = parse_container(packed, "mem", &off);
          if (pure) {
            EXPECT_EQ(h.policy, policy == 0 ? WindowKind::kRolling : WindowKind::kStrided);
          } else {
            EXPECT_LE(packed.size(), stored_frame_size(data.size())) << label;
          }
          EXPECT_EQ(lm_decompress(m, packed, "mem"), data) << label << " streams " << streams << " policy " << policy
                                                           << " pure " << pure;
        }
      }
    }
  }
}

TEST(LmCodecTest, OutputIndependentOfThreadCountAndDeterministic) {
  auto m = byte_model();
  const std::string data = inputs()[5].second;
  for (bool pure : {true, false}) {
    CodecOptions one, two;
    one.streams = two.streams = 6;
    one.groups = two.groups = 3;
    one.threads = 1;
    two.threads = 2;
    one.pure = two.pure = pure;
    torch::set_num_threads(1);
    auto a = lm_compress(m, data, one);
    torch::set_num_threads(2);
    auto b = lm_compress(m, data, two);
    auto c = lm_compress(m, data, two);
    EXPECT_EQ(a, b);
    EXPECT_EQ(b, c);
    EXPECT_EQ(lm_decompress(m, a, "mem", two), data);  // decoded with another thread count
  }
}

// Observers for every hook site plus one on hook_embed that checks the RunInfo against the data: each
// live, non-BOS token's embedding row must be that of the byte at its byte offset.
struct RunChecker {
  RunChecker(const std::string& d, torch::Tensor w) : data(d), W_E(std::move(w)) {}
  const std::string& data;
  torch::Tensor W_E;
  int64_t fed = 0, mismatched = 0, bos_rows = 0;
  std::set<int64_t> streams;
  void attach(model::HookSet& hooks) {
    hooks.observe("*", [](const torch::Tensor&, const model::HookContext&) {});
    hooks.observe("hook_embed", [this](const torch::Tensor& x, const model::HookContext& ctx) {
      ASSERT_NE(ctx.run, nullptr);
      const auto& r = *ctx.run;
      for (int64_t row = 0; row < r.batch; ++row) {
        if (!r.live[row]) continue;
        for (int64_t i = 0; i < r.pos; ++i) {
          const int64_t off = r.byte_offset_at(row, i);
          if (r.position_at(row, i) == 0) {
            bos_rows += off == -1;
            continue;
          }
          if (off < 0) continue;
          streams.insert(r.stream[row]);
          ++fed;
          mismatched += !torch::equal(x[row][i], W_E[static_cast<unsigned char>(data[off])]);
        }
      }
    });
  }
};

// Observers on every hook site of every group: same bytes; every fed token's RunInfo names its stream,
// position and byte offset.
TEST(LmCodecTest, ObserversNeverChangeTheBytesAndSeeTheRun) {
  auto m = byte_model(4, 16);
  const std::string data = inputs()[5].second;
  const auto W_E = m.model->state_dict().at("embed.W_E");
  for (bool strided : {false, true}) {
    CodecOptions plain;
    plain.streams = 5;
    plain.groups = 2;
    plain.strided = strided;
    const auto ref = lm_compress(m, data, plain);
    std::vector<model::HookSet> sets(2);
    std::vector<RunChecker> checks(2, RunChecker{data, W_E});
    for (int g = 0; g < 2; ++g) checks[g].attach(sets[g]);
    CodecOptions hooked = plain;
    hooked.hooks = [&](int64_t g) { return &sets[g]; };
    EXPECT_EQ(lm_compress(m, data, hooked), ref) << "strided " << strided;
    EXPECT_EQ(checks[0].mismatched + checks[1].mismatched, 0);
    EXPECT_GT(checks[0].fed + checks[1].fed, static_cast<int64_t>(data.size()) - 5 - 1);
    EXPECT_EQ(checks[0].bos_rows + checks[1].bos_rows, 5);
    EXPECT_EQ(checks[0].streams, (std::set<int64_t>{0, 1}));  // groups of 5 streams in 2: [0, 2) and [2, 5)
    EXPECT_EQ(checks[1].streams, (std::set<int64_t>{2, 3, 4}));
    EXPECT_EQ(lm_decompress(m, ref, "mem", hooked), data);
  }
}

// `ccc bits --streams` (segmented_bits) takes the same hooks: observers change nothing and see every
// stream with its byte offsets.
TEST(LmCodecTest, SegmentedBitsTakesHooks) {
  auto m = byte_model(4, 16);
  const std::string data = inputs()[5].second;
  for (bool strided : {false, true}) {
    CodecOptions o;
    o.streams = 4;
    o.strided = strided;
    const double plain = segmented_bits(m, data, o);
    model::HookSet hooks;
    RunChecker check{data, m.model->state_dict().at("embed.W_E")};
    check.attach(hooks);
    o.hooks = [&](int64_t) { return &hooks; };
    EXPECT_EQ(segmented_bits(m, data, o), plain) << "strided " << strided;
    EXPECT_EQ(check.streams, (std::set<int64_t>{0, 1, 2, 3}));
    EXPECT_GE(check.fed, static_cast<int64_t>(data.size()) - 4);
    EXPECT_EQ(check.mismatched, 0);
  }
}

TEST(LmCodecTest, PayloadMatchesBitsUnderSameSegmentation) {
  auto m = byte_model(2, 32);
  std::string data;
  std::mt19937 rng(5);
  const char* words[] = {"alpha ", "beta ", "gamma ", "delta ", "\n"};
  while (data.size() < 6000) data += words[rng() % 5];
  for (int64_t streams : {1, 4}) {
    for (bool strided : {false, true}) {
      CodecOptions o;
      o.streams = streams;
      o.strided = strided;
      o.pure = true;  // the measurement: no floor, no context models
      auto packed = lm_compress(m, data, o);
      size_t off = 0;
      auto h = parse_container(packed, "mem", &off);
      const double payload_bits = 8.0 * static_cast<double>(packed.size() - off);
      const double bits = segmented_bits(m, data, o);
      EXPECT_LT(std::abs(payload_bits - bits) / bits, 0.005)
          << "payload " << payload_bits << " bits vs " << bits << " (streams " << streams << ", strided " << strided << ")";
      EXPECT_EQ(h.streams.size(), static_cast<size_t>(streams));
    }
  }
}

TEST(LmCodecTest, TruncationAtEveryHeaderFieldIsAClearError) {
  auto m = byte_model();
  const std::string data = "hello hello hello hello";
  for (bool pure : {true, false}) {  // a pure frame and the default's (here a stored one)
    CodecOptions o;
    o.pure = pure;
    auto packed = lm_compress(m, data, o);
    size_t off = 0;
    parse_container(packed, "mem", &off);
    for (size_t cut = 0; cut < packed.size(); ++cut) {
      test::expect_error([&] { lm_decompress(m, std::string_view(packed).substr(0, cut), "cut.ccc"); }, {"cut.ccc"});
    }
  }
}

TEST(LmCodecTest, FlippedPayloadBytesAreDetected) {
  auto m = byte_model();
  const std::string data = inputs()[5].second;
  for (bool pure : {true, false}) {
    CodecOptions o;
    o.pure = pure;
    auto packed = lm_compress(m, data, o);
    size_t off = 0;
    parse_container(packed, "mem", &off);
    for (size_t i = off; i < packed.size(); i += std::max<size_t>(1, (packed.size() - off) / 13)) {
      auto bad = packed;
      bad[i] = static_cast<char>(bad[i] ^ 0x5a);
      EXPECT_THROW(lm_decompress(m, bad, "flip.ccc"), Error) << "flip at " << i << " pure " << pure;
    }
    auto bad_header = packed;
    bad_header[20] ^= 1;  // pure: inside the fingerprint, caught by the header checksum
    EXPECT_THROW(lm_decompress(m, bad_header, "flip.ccc"), Error);
  }
}

TEST(LmCodecTest, WrongModelNamesBothFingerprints) {
  auto m = byte_model(1), other = byte_model(2);
  CodecOptions o;
  o.pure = true;  // a frame the model coded (the default would store 9 bytes as they are)
  auto packed = lm_compress(m, "some data", o);
  test::expect_error([&] { lm_decompress(other, packed, "x.ccc"); },
                     {m.fingerprint.substr(0, 16), other.fingerprint.substr(0, 16)});
}

TEST(LmCodecTest, WrongVersionIsRejected) {
  auto m = byte_model();
  auto packed = lm_compress(m, "data", {});
  packed[4] = 9;  // version field (little endian u16 after the magic)
  test::expect_error([&] { lm_decompress(m, packed, "v.ccc"); }, {"version 9"});
  packed[0] = 'X';
  EXPECT_THROW(lm_decompress(m, packed, "v.ccc"), Error);
}

TEST(LmCodecTest, Gpt2TokenizerStreamsRoundTrip) {
  auto dir = test::shared_path("tokenizers/gpt2");
  CCC_REQUIRE_SHARED(dir);
  auto cfg = test::tiny_config("gpt2");
  cfg.d_vocab = cfg.d_vocab_out = 50257;
  cfg.bos_id = cfg.eos_id = 50256;
  cfg.n_ctx = 16;
  model::LoadedModel m;
  m.config = cfg;
  m.model = model::Transformer(cfg);
  m.model->init_weights(4);
  m.model->eval();
  m.tokenizer = model::load_tokenizer(dir, 0);
  m.fingerprint = model::model_fingerprint(cfg, m.model, *m.tokenizer);
  for (const auto& [label, data] : inputs()) {
    CodecOptions o;
    o.streams = 3;
    EXPECT_EQ(lm_decompress(m, lm_compress(m, data, o), "mem"), data) << label;
  }
}

}  // namespace
}  // namespace ccc::compress

namespace ccc::compress {
namespace {

// Every input compresses with the llama2.c tokenizer (byte fallback; the dummy-prefix token codes no
// byte), including the inputs that once failed: a lone space, leading spaces, 0xff, runs of newlines or NULs.
TEST(LmCodecTest, Llama2cTokenizerCompressesEveryInput) {
  auto ckpt = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(ckpt);
  auto m = model::load_model(ckpt, test::shared_path("models/tok512.bin"));
  std::vector<std::pair<std::string, std::string>> cases = {
      {"space", " "}, {"two spaces x", "  x"}, {"0xff", "\xff"}, {"newlines", "\n\n\n\n"},
      {"NULs", std::string(5, '\0')}, {"tab", "\t"}, {"mixed", " \xff\xfe \n"}};
  for (const auto& c : inputs()) cases.push_back(c);
  for (const auto& [label, data] : cases)
    for (int64_t streams : {1, 3}) {
      CodecOptions o;
      o.streams = streams;
      EXPECT_EQ(lm_decompress(m, lm_compress(m, data, o), "mem"), data) << label << ", " << streams << " streams";
    }
}

// A tokenizer whose tokens do not decode back to the input (here: 'a' decodes as 'b') is refused by
// compress before anything is written, naming the stream and the first differing byte.
class NotLosslessTokenizer final : public model::Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override { return inner_.encode(text); }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string s = inner_.decode(ids);
    for (char& c : s) c = c == 'a' ? 'b' : c;
    return s;
  }
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  int64_t bos_id() const override { return inner_.bos_id(); }
  int64_t eos_id() const override { return -1; }
  std::string kind() const override { return "byte"; }
  bool lossless() const override { return true; }
  std::string serialize() const override { return "not-lossless"; }
  std::string token_bytes(int64_t id) const override { return inner_.token_bytes(id); }

 private:
  model::ByteTokenizer inner_;
};

TEST(LmCodecTest, TokensThatDoNotDecodeBackAreRefused) {
  auto m = byte_model();
  m.tokenizer = std::make_shared<NotLosslessTokenizer>();
  CodecOptions o;
  o.streams = 2;
  EXPECT_NO_THROW(lm_compress(m, "xyz xyz xyz", o));
  test::expect_error([&] { lm_compress(m, "xyz xyz abc", o); }, {"does not round-trip stream 1", "at byte 8"});
}

}  // namespace
}  // namespace ccc::compress

namespace ccc::compress {
namespace {

// A .ccc file is one or more frames: lm_compress_frames = the frames' containers concatenated (one frame
// = exactly lm_compress), lm_decompress restores any number of them, and a cut inside a later frame,
// garbage after the last one, or a forged frame longer than kMaxFrameBytes are clear errors.
TEST(LmCodecTest, FramesConcatenateAndDecodeWhole) {
  auto m = byte_model();
  std::string text;
  for (int i = 0; text.size() < 10000; ++i) text += "frame test line " + std::to_string(i) + "\n";
  CodecOptions o;
  EXPECT_EQ(lm_compress_frames(m, text, o, 1 << 20), lm_compress(m, text, o));
  const std::string packed = lm_compress_frames(m, text, o, 4096);
  const std::string f0 = lm_compress(m, std::string_view(text).substr(0, 4096), o);
  EXPECT_EQ(packed.substr(0, f0.size()), f0);
  EXPECT_EQ(frame_size(packed, "mem"), f0.size());
  EXPECT_EQ(lm_decompress(m, packed, "mem"), text);
  EXPECT_EQ(lm_decompress(m, lm_compress_frames(m, "", o, 4096), "mem"), "");
  test::expect_error([&] { lm_decompress(m, packed.substr(0, packed.size() - 3), "cut.ccc"); }, {"truncated"});
  test::expect_error([&] { lm_decompress(m, packed + "junk", "junk.ccc"); }, {"4 unexpected bytes"});
  EXPECT_EQ(frame_size(f0.substr(0, 10), "mem"), 0u);  // inside the header: read more
  EXPECT_THROW(lm_compress(m, std::string(kMaxFrameBytes + 1, 'a'), o), Error);
}

}  // namespace
}  // namespace ccc::compress

namespace ccc::compress {
namespace {

// Files compressed by an earlier build must decode with this one, so the compressed bytes of the shipped

// The attention FLOPs bench compress counts equal the keys each fed position really attends in the
// codec's model calls: counted here from hook_pattern's key positions (live rows, keys at or before the
// query), for both window policies, streams of unequal length, and a window the streams outgrow.
TEST(LmCodecTest, AttentionFlopsCountTheKeysEachFedPositionAttends) {
  auto m = byte_model(5, 16);
  const std::string data = inputs()[5].second.substr(0, 203);
  const auto& c = m.config;
  for (bool strided : {false, true}) {
    CodecOptions o;
    o.streams = 4;
    o.groups = 1;
    o.strided = strided;
    o.window = strided ? 12 : 10;
    model::HookSet hooks;
    double keys = 0;
    hooks.observe("blocks.0.attn.hook_pattern", [&](const torch::Tensor& x, const model::HookContext& ctx) {
      ASSERT_NE(ctx.key_pos, nullptr);
      ASSERT_NE(ctx.run, nullptr);
      for (int64_t r = 0; r < x.size(0); ++r) {
        if (!ctx.run->live[r]) continue;
        for (int64_t q = 0; q < x.size(2); ++q)
          for (int64_t k : *ctx.key_pos) keys += (k >= 0 && k <= ctx.pos_offset + q) ? 1 : 0;
      }
    });
    o.hooks = [&](int64_t) { return &hooks; };
    lm_compress(m, data, o);
    const auto n = stream_token_counts(m, data, o);
    ASSERT_EQ(n.size(), 4u);
    const double want = 4.0 * keys * static_cast<double>(c.n_heads * c.d_head * c.n_layers);
    EXPECT_GT(keys, 0);
    EXPECT_DOUBLE_EQ(codec_attention_flops(c, n, o), want) << "strided " << strided;
    // the fp16 keys and values those keys are: K and V, n_kv_heads x d_head halves each, in every layer
    EXPECT_DOUBLE_EQ(codec_kv_cache_bytes(c, n, o), keys * 2.0 * static_cast<double>(c.n_kv_heads * c.d_head) * 2.0 *
                                                        static_cast<double>(c.n_layers))
        << "strided " << strided;
  }
  // grouped-query attention reads n_kv_heads' caches, not n_heads'
  auto gqa = c;
  gqa.n_heads = 4;
  gqa.n_kv_heads = 2;
  CodecOptions w3;
  w3.window = 3;
  EXPECT_DOUBLE_EQ(codec_kv_cache_bytes(gqa, {5}, w3), 12.0 * 2 * 2 * static_cast<double>(gqa.d_head) * 2 *
                                                           static_cast<double>(gqa.n_layers));
  // by hand: rolling W = 3 over 5 fed positions attends 1 + 2 + 3 + 3 + 3 keys; strided W = 4, S = 2
  // (one kept token) over 6: 1, 2, 3, then a restart feeding 2 (1 + 2), 3, a restart (1 + 2)
  CodecOptions roll;
  roll.window = 3;
  CodecOptions strided;
  strided.strided = true;
  strided.window = 4;
  const double unit = 4.0 * static_cast<double>(c.n_heads * c.d_head * c.n_layers);
  EXPECT_DOUBLE_EQ(codec_attention_flops(c, {5}, roll), 12 * unit);
  EXPECT_DOUBLE_EQ(codec_attention_flops(c, {6}, strided), 15 * unit);
}

TEST(LmCodecTest, AutomaticGroupsKeepEachGroupsCachesWithinTheBudget) {
  auto cfg = [](int64_t layers, int64_t kv_heads, int64_t d_head) {
    model::ModelConfig c;
    c.n_layers = layers;
    c.n_heads = c.n_kv_heads = kv_heads;
    c.d_head = d_head;
    return c;
  };
  const auto s = cfg(3, 4, 32), xs = cfg(2, 2, 32), l = cfg(5, 4, 64);
  EXPECT_EQ(codec_cache_row_bytes(s, 128), 3 * 2 * 4 * 32 * 128 * 2);
  // ccc-byte-s at its window of 128: 16 rows (3 MiB) per group, so 256 streams take 16 groups
  EXPECT_EQ(auto_groups(s, 128, 256), 16);
  EXPECT_LE((256 / 16) * codec_cache_row_bytes(s, 128), kGroupCacheBytes);
  EXPECT_EQ(auto_groups(s, 128, 200), 13);  // ceil(200 / 16)
  EXPECT_EQ(auto_groups(s, 128, 100), 8);   // never fewer than kDefaultGroups
  // xs: 48 rows fit, so the default 8 groups already do; few streams: one group each
  EXPECT_EQ(auto_groups(xs, 128, 256), 8);
  EXPECT_EQ(auto_groups(s, 128, 3), 3);
  EXPECT_EQ(auto_groups(s, 128, 1), 1);
  // the default's 2.6 MB rows: fewer than kMinCacheRows fit, so the grouping stays (no 1-row GEMMs)
  EXPECT_LT(kGroupCacheBytes / codec_cache_row_bytes(l, 512), kMinCacheRows);
  EXPECT_EQ(auto_groups(l, 512, 196), 8);
  // never more than kMaxStreamsPerGroup streams in a group
  EXPECT_EQ(auto_groups(xs, 2, 4096), 4096 / static_cast<int64_t>(kMaxStreamsPerGroup));
  // lm_compress records the automatic grouping, and the result decodes
  auto m = byte_model(2, 16);
  const std::string data = inputs()[5].second;
  CodecOptions o;
  o.pure = true;  // the model's frame (its header records the groups)
  o.streams = 40;
  const auto packed = lm_compress(m, data, o);
  size_t at = 0;
  const Header h = parse_container(packed, "mem", &at);
  EXPECT_EQ(h.n_groups, static_cast<uint32_t>(auto_groups(m.config, h.window, 40)));
  EXPECT_EQ(lm_decompress(m, packed, "mem"), data);
}

// models may not drift: any change to the decode kernels' arithmetic (summation order, FMA contraction,
// fp16 handling) shows up here. The digests (of the payloads, not the header, whose runtime hash names the
// machine's OpenBLAS kernel) were recorded with the AVX2 attention path (another CPU path writes other
// bytes), so other paths skip. Re-pinned as payload digests when CI moved from a Zen to a Cooperlake
// OpenBLAS kernel: the same payloads under OPENBLAS_CORETYPE=Zen, Haswell and Cooperlake.
// (Recorded when the attention loops got compile-time lane counts; the same files, compressed by the
// build before that change, were byte-identical — cmp on 30 KB of moby-dick, xs / attn2 / s / l512.)
TEST(LmCodecTest, CompressedBytesOfTheShippedModelsDoNotDrift) {
  std::string text;
  std::mt19937 rng(11);
  const char* words[] = {"the ", "model ", "compresses ", "text ", "in ", "bits", ". ", "\n", "A ", "head ", "copies ",
                         "(and ", "prices) ", "every ", "token, ", "1024 "};
  while (text.size() < 3000) text += words[rng() % 16];
  const std::vector<std::pair<std::string, std::string>> want = {
      {"ccc-byte-xs", "911b64166df33961923fcaa88c3eb55d17483851d8070fdbec9740715aab0c6f"},  // d_head 32
      {"ccc-attn2", "19e1da5794d7baa59b79fe7e608d0b9a3dfa57f6fa56fe7d65956e6c18ac06e7"},    // 32, attention only
      {"ccc-byte-m", "cbe8e9f90bd518996cf50f5e9464485eb93aa7f44a0bc87827e36be8f73805d7"},   // 48
      {"ccc-byte-l", "686921602636b42d7f524ae0d7d6520ec48a51bb2d1a93c429f4ba220f7ae6b0"}};  // 64
  for (const auto& [name, digest] : want) {
    auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/" + name);
    if (model::decode_attention_path(m.config.d_head) != "avx2") GTEST_SKIP() << "digests recorded on the avx2 path";
    CodecOptions o;
    o.streams = 3;
    o.pure = true;  // the model's arithmetic alone (the same payloads as format version 3 wrote)
    const auto packed = lm_compress(m, text, o);
    // the payloads only: the header's runtime hash names this machine's OpenBLAS kernel (Zen, Haswell,
    // Cooperlake, ...), which the rolling decode path never calls; the arithmetic is what may not drift
    size_t payload_at = 0;
    const Header h = parse_container(packed, name, &payload_at);
    EXPECT_EQ(h.runtime_hash, xxh64(runtime_id())) << name;
    EXPECT_EQ(sha256_hex(packed.substr(payload_at)), digest)
        << name << ": the compressed payloads changed (" << packed.size() - payload_at << " bytes)";
    EXPECT_EQ(lm_decompress(m, packed, "mem"), text) << name;
  }
}

}  // namespace
}  // namespace ccc::compress

namespace ccc::compress {
namespace {

Header first_header(const std::string& packed) {
  size_t off = 0;
  return parse_container(std::string_view(packed).substr(0, frame_size(packed, "mem")), "mem", &off);
}

// The default never expands: each frame is the smallest of the model's, the context models alone and
// stored. Random bytes are stored (the stated bound exactly); a repeated binary block, which an untrained
// model cannot predict, goes to the context models; both restore.
TEST(LmCodecTest, DefaultKeepsTheSmallestFrameAndNeverExpands) {
  auto m = byte_model(3, 32);
  std::mt19937 rng(8);
  std::string random, block, repeated;
  for (int i = 0; i < 3000; ++i) random.push_back(static_cast<char>(rng() & 0xff));
  for (int i = 0; i < 700; ++i) block.push_back(static_cast<char>(rng() % 7 == 0 ? 0 : rng() & 0xff));
  for (int i = 0; i < 5; ++i) repeated += block;
  const std::string gz = random.substr(0, 100) + std::string(2000, '\0');  // a run the model never saw
  for (const auto& [label, data, want] : std::vector<std::tuple<std::string, std::string, FrameMode>>{
           {"random", random, FrameMode::kStored}, {"repeated block", repeated, FrameMode::kContext},
           {"run of zeros", gz, FrameMode::kContext}, {"empty", "", FrameMode::kStored}}) {
    CodecStats st;
    CodecOptions o;
    o.streams = 4;
    o.stats = &st;
    const auto packed = lm_compress(m, data, o);
    EXPECT_EQ(first_header(packed).mode, want) << label;
    EXPECT_LE(packed.size(), stored_frame_size(data.size())) << label;
    EXPECT_EQ(st.frames, 1u);
    EXPECT_EQ(st.stored_frames + st.context_frames + st.mixed_frames, 1u);
    EXPECT_EQ(packed.size(), std::min({st.model_frame_bytes, st.context_frame_bytes, stored_frame_size(data.size())}))
        << label << ": not the smallest of the frames tried";
    EXPECT_EQ(lm_decompress(m, packed, "mem"), data) << label;
    // a stored or context frame needs no model: another model restores it too
    auto other = byte_model(9, 16);
    EXPECT_EQ(lm_decompress(other, packed, "mem"), data) << label;
  }
  // an executable (this test's own binary) and already-compressed bytes (a context frame's payload):
  // never more than the bound, and restored
  const std::string exe = read_file("/proc/self/exe").substr(0, 6000);
  const std::string packed_text = cm_encode(test::unicode_text(), mixer_table_bits(4096));
  for (const std::string& data : {exe, packed_text}) {
    CodecOptions o;
    o.streams = 4;
    const auto packed = lm_compress(m, data, o);
    EXPECT_LE(packed.size(), stored_frame_size(data.size()));
    EXPECT_EQ(lm_decompress(m, packed, "mem"), data);
  }
  // the bound over frames: n + (kStoredOverhead + varint) per frame
  const auto packed = lm_compress_frames(m, random, {}, 1000);
  EXPECT_EQ(packed.size(), random.size() + 3 * (kStoredOverhead + 2));
  EXPECT_EQ(lm_decompress(m, packed, "mem"), random);
}

// Mixed frames with a trained byte model: kept on text, exact, independent of the thread count; the
// observers see the same run as in pure mode (same bits per token: a dump does not depend on the mode);
// the mixer's model-alone bits equal the pure payload's measure.
TEST(LmCodecTest, MixedFramesWithATrainedModel) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-xs");
  const std::string text = read_file(std::string(CCC_SOURCE_DIR) + "/data/golden/original.txt");  // English prose
  std::vector<std::vector<double>> bits(2);
  std::string outs[2];
  CodecStats st[2];
  for (int pure = 0; pure < 2; ++pure) {
    CodecOptions o;
    o.pure = pure == 1;
    o.stats = &st[pure];
    std::mutex mu;
    bits[pure].assign(text.size(), 0.0);
    o.on_coded = [&, pure](int64_t, int64_t stream, int64_t pos, int64_t, double b) {
      std::lock_guard<std::mutex> lock(mu);
      bits[pure][segment_range(text.size(), model::resolve_streams(text.size(), 0), stream).first + pos - 1] = b;
    };
    outs[pure] = lm_compress(m, text, o);
    EXPECT_EQ(lm_decompress(m, outs[pure], "mem"), text);
  }
  EXPECT_EQ(first_header(outs[0]).mode, FrameMode::kMixed);
  EXPECT_EQ(first_header(outs[1]).mode, FrameMode::kPure);
  EXPECT_LT(outs[0].size(), outs[1].size()) << "mixing did not pay on English prose";
  EXPECT_LT(st[0].model_frame_bytes, st[0].context_frame_bytes) << "the model earned nothing over the context models";
  double max_diff = 0;
  for (size_t i = 0; i < text.size(); ++i) max_diff = std::max(max_diff, std::abs(bits[0][i] - bits[1][i]));
  EXPECT_EQ(max_diff, 0.0) << "the observers' bits differ between modes";
  EXPECT_NEAR(st[0].lm_bits, st[1].lm_bits, 1e-6 * st[1].lm_bits);
  EXPECT_NEAR(st[0].mix_bits, 8.0 * static_cast<double>(st[0].model_frame_bytes), 8.0 * 120);  // + header
  CodecOptions one, two;
  one.threads = 1;
  two.threads = 2;
  EXPECT_EQ(lm_compress(m, text, one), outs[0]);
  EXPECT_EQ(lm_compress(m, text, two), outs[0]);
}

// Pure frames of a BPE-token model (no mixed mode) store a group raw when its code is not smaller.
TEST(LmCodecTest, BpeModelsStoreIncompressibleGroupsRaw) {
  auto ckpt = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(ckpt);
  auto m = model::load_model(ckpt, test::shared_path("models/tok512.bin"));
  std::mt19937 rng(2);
  const char* who[] = {"Lily", "Tom", "the little dog", "a happy bird", "Mom", "the old man", "Ben"};
  const char* did[] = {"saw", "found", "wanted", "played with", "liked", "shared", "looked at"};
  const char* what[] = {"a big red ball", "the sun", "a small cat", "her toy", "the tree", "a kind friend", "the park"};
  std::string text = "Once upon a time, ";
  while (text.size() < 1500) {
    text += std::string(who[rng() % 7]) + " " + did[rng() % 7] + " " + what[rng() % 7] + ". ";
    if (rng() % 3 == 0) text += "They were very happy. ";
  }
  text.resize(1500);
  std::string noise;
  for (int i = 0; i < 1500; ++i) noise.push_back(static_cast<char>(rng() & 0xff));
  const std::string data = text + noise;
  CodecOptions o;
  o.streams = 2;
  o.groups = 2;
  o.context_frames = false;  // the context models alone would win here; this test looks at the model's frame
  CodecStats st;
  o.stats = &st;
  const auto packed = lm_compress(m, data, o);
  const Header h = first_header(packed);
  ASSERT_EQ(h.mode, FrameMode::kPure);
  EXPECT_EQ(h.group_raw, (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(h.group_bytes[1], 1500u);
  EXPECT_EQ(st.raw_groups, 1u);
  EXPECT_EQ(lm_decompress(m, packed, "mem"), data);
}

}  // namespace
}  // namespace ccc::compress
