#include "circuits/head_detectors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "circuits/icl.h"
#include "model/base/error.h"
#include "model/formats/tokenizer.h"
#include "tests/support/test_support.h"

namespace ccc::circuits {
namespace {

// A byte model built by hand that copies by induction (Olsson et al.'s two-head circuit), RMSNorm, learned
// positions, one head per layer. The residual stream holds four one-hot subspaces: the token (257), its
// position (n_ctx), the previous token (256, written by layer 0) and the predicted token (256, by layer 1).
//   layer 0: query = own position, key = position + 1, value = token -> PREV: attends to t − 1 (previous token)
//   layer 1: query = own token, key = PREV, value = token -> OUT: attends to the position after an earlier
//            occurrence of the current token and copies what followed it
// The unembedding reads OUT. Attention logits are ~50 at a match, so patterns are one-hot to ~1e-20.
model::LoadedModel induction_copier(int64_t n_ctx = 128) {
  model::ModelConfig c;
  c.arch = "ccc";
  c.d_vocab = 257;
  c.d_vocab_out = 256;
  const int64_t TOK = 0, POS = 257, PREV = POS + n_ctx, OUT = PREV + 256;
  c.d_model = OUT + 256;
  c.n_layers = 2;
  c.n_heads = c.n_kv_heads = 1;
  c.d_head = 256;
  c.n_ctx = n_ctx;
  c.attn_only = true;
  c.d_mlp = 0;
  c.norm = model::NormKind::kRMSNorm;
  c.pos = model::PosKind::kLearned;
  c.rotary_dim = 0;
  c.attn_bias = false;
  c.norm_bias = false;
  c.tied_embed = false;
  c.bos_id = 256;
  c.validate();
  model::Transformer m(c);
  auto sd = m->state_dict();
  torch::NoGradGuard g;
  for (auto& [name, t] : sd) t.zero_();
  for (auto& [name, t] : sd)
    if (name.find("ln") != std::string::npos) t.fill_(1.0);
  const double d = static_cast<double>(c.d_model);
  const double s0 = std::sqrt(d / 2), s1 = std::sqrt(d / 3);  // RMSNorm gain of a residual of 2 / 3 one-hots
  for (int64_t v = 0; v < 257; ++v) sd.at("embed.W_E")[v][TOK + v] = 1.0;
  for (int64_t p = 0; p < n_ctx; ++p) sd.at("pos_embed.W_pos")[p][POS + p] = 1.0;
  auto qkv0 = sd.at("blocks.0.attn.W_qkv"), qkv1 = sd.at("blocks.1.attn.W_qkv");
  const int64_t H = c.d_head;
  for (int64_t p = 0; p < n_ctx; ++p) {
    qkv0[p][POS + p] = 2.0;                         // q: own position
    if (p + 1 < H) qkv0[H + p + 1][POS + p] = 1.0;  // k: position + 1
  }
  for (int64_t v = 0; v < 256; ++v) {
    qkv0[2 * H + v][TOK + v] = 1.0;                 // v: token
    sd.at("blocks.0.attn.W_O")[PREV + v][v] = 1.0 / s0;
    qkv1[v][TOK + v] = 3.0;                         // q: own token
    qkv1[H + v][PREV + v] = 1.0;                    // k: previous token
    qkv1[2 * H + v][TOK + v] = 1.0;                 // v: token
    sd.at("blocks.1.attn.W_O")[OUT + v][v] = 1.0 / s1;
    sd.at("unembed.W_U")[v][OUT + v] = 3.0;
  }
  m->eval();
  model::LoadedModel lm;
  lm.config = c;
  lm.model = m;
  lm.tokenizer = std::make_shared<model::ByteTokenizer>();
  lm.source = "induction_copier";
  return lm;
}

TEST(HeadDetectors, FindThePreviousTokenAndInductionHeadsOfAHandBuiltCopier) {
  auto m = induction_copier();
  const auto s = head_scores(m, 50, 8, 3);
  EXPECT_GT(s.score(s.prev_token, 0, 0), 0.999);
  EXPECT_LT(s.score(s.induction, 0, 0), 0.05);
  // random printable r of 50 bytes repeats some bytes, which splits the induction head between candidates
  EXPECT_GT(s.score(s.induction, 1, 0), 0.75);
  EXPECT_LT(s.score(s.prev_token, 1, 0), 0.1);
  // the copier is confidently wrong where a byte recurs in r, so only compare the halves
  EXPECT_GT(s.first_half_bits, 6.0);
  EXPECT_LT(s.second_half_bits, 0.5 * s.first_half_bits);
}

TEST(Icl, ACopierPaysAlmostNothingForTheSecondCopy) {
  auto m = induction_copier();
  // spans of distinct bytes: every earlier occurrence is unique, so only the first byte of the copy is unknown
  std::vector<std::string> spans;
  std::mt19937_64 rng(11);
  for (int k = 0; k < 4; ++k) {
    std::string s(60, ' ');
    std::vector<int> bytes(95);
    std::iota(bytes.begin(), bytes.end(), 32);
    std::shuffle(bytes.begin(), bytes.end(), rng);
    for (int i = 0; i < 60; ++i) s[i] = static_cast<char>(bytes[i]);
    spans.push_back(s);
  }
  const auto r = circuits::repeated_span_bits(m, spans);
  EXPECT_EQ(r.spans, 4);
  EXPECT_EQ(r.bytes, 240);
  EXPECT_GT(r.first_bpb, 6.0);
  // the first byte of each second copy costs about log2(60) (attention spread over the first copy), the rest ~0
  EXPECT_LT(r.second_bpb, 10.0 / 60);
  // random printable repeats (bytes may recur): still far below the first copy
  const auto rnd = circuits::repeated_span_bits(m, circuits::random_printable(50, 8, 1));
  EXPECT_LT(rnd.second_bpb, 0.25 * rnd.first_bpb);
  // the ICL score of a copier on text with repeats is negative; the curve has one entry per position
  circuits::IclOptions o;
  o.early = 10;
  o.late = 100;
  o.windows = 4;
  o.span_len = 40;
  o.spans = 2;
  std::string text;
  for (int k = 0; k < 30; ++k) text += "the cat sat on the mat. ";
  const auto rep = circuits::measure_icl(m, {{"repeats", text}}, o);
  EXPECT_EQ(rep.late, 100);
  EXPECT_EQ(rep.curve.size(), 104u);
  EXPECT_LT(rep.icl_score, -1.0);
  EXPECT_EQ(rep.windows, 4);
  EXPECT_LE(rep.icl_ci_low, rep.icl_score);
  EXPECT_GE(rep.icl_ci_high, rep.icl_score);
  EXPECT_LT(rep.icl_ci_high, 0.0) << "the copier's CI excludes no in-context learning";
  // --windows N uses exactly N, split over the sources that hold a window (one source too short here)
  o.windows = 7;
  const auto three = circuits::measure_icl(m, {{"a", text}, {"b", text + text}, {"short", "too short"}, {"c", text}}, o);
  EXPECT_EQ(three.windows, 7);
}

// A hand-built pattern [1, 3, 2L+1, 2L+1]: head 0 attends exactly to t − 1, head 1 is an induction head on the
// second copy (and attends to BOS before it), head 2 attends uniformly to every position up to itself.
// make-probe's texts: lines "s s", "s t" and "t s", t != s, printable, seeded.
TEST(Icl, ProbeTextsAreAMatchedRepeatedFreshAndCorruptTriple) {
  const int64_t len = 12, count = 30;
  const auto p = make_probe(len, count, 7);
  ASSERT_EQ(p.repeated.size(), static_cast<size_t>(count * (2 * len + 1)));
  ASSERT_EQ(p.fresh.size(), p.repeated.size());
  for (int64_t i = 0; i < count; ++i) {
    const size_t at = static_cast<size_t>(i * (2 * len + 1)), L = static_cast<size_t>(len);
    const std::string s = p.repeated.substr(at, L), again = p.repeated.substr(at + L, L);
    const std::string f = p.fresh.substr(at, L), t = p.fresh.substr(at + L, L);
    EXPECT_EQ(p.corrupt.substr(at, L), t) << "line " << i;  // corrupt: the first copy replaced
    EXPECT_EQ(p.corrupt.substr(at + L, L), s) << "line " << i;
    EXPECT_EQ(again, s) << "line " << i;
    EXPECT_EQ(f, s) << "line " << i;
    EXPECT_NE(t, s) << "line " << i;
    EXPECT_EQ(p.repeated[at + 2 * L], '\n');
    EXPECT_EQ(p.fresh[at + 2 * L], '\n');
    EXPECT_EQ(p.corrupt[at + 2 * L], '\n');
    for (char c : s + t) EXPECT_TRUE(c >= 32 && c <= 126);
  }
  EXPECT_EQ(make_probe(len, count, 7).fresh, p.fresh);
  EXPECT_NE(make_probe(len, count, 8).repeated, p.repeated);
  test::expect_error([] { (void)make_probe(0, 3, 1); }, {"make-probe"});
}

TEST(HeadDetectors, ScoresOfHandBuiltPatternsMatchTheDefinitions) {
  const int64_t L = 5, T = 2 * L + 1;
  auto p = torch::zeros({1, 3, T, T});
  for (int64_t t = 0; t < T; ++t) {
    p[0][0][t][std::max<int64_t>(0, t - 1)] = 1.0;
    p[0][1][t][t > L ? t - L + 1 : 0] = 1.0;
    for (int64_t k = 0; k <= t; ++k) p[0][2][t][k] = 1.0 / static_cast<double>(t + 1);
  }
  const auto s = pattern_scores(p, L);
  ASSERT_EQ(s.size(), 3u);
  // head 0: pure previous-token
  EXPECT_DOUBLE_EQ(s[0][0], 1.0);
  EXPECT_DOUBLE_EQ(s[1][0], 0.0);
  EXPECT_DOUBLE_EQ(s[2][0], 0.0);
  // head 1: induction 1; previous-token only where t − 1 is BOS (t = 1); duplicate 0
  EXPECT_DOUBLE_EQ(s[1][1], 1.0);
  EXPECT_NEAR(s[0][1], 1.0 / (2 * L), 1e-12);
  EXPECT_DOUBLE_EQ(s[2][1], 0.0);
  // head 2: uniform causal attention, 1/(t+1) on every target
  double prev = 0, second = 0;
  for (int64_t t = 1; t <= 2 * L; ++t) prev += 1.0 / (t + 1);
  for (int64_t t = L + 1; t <= 2 * L; ++t) second += 1.0 / (t + 1);
  EXPECT_NEAR(s[0][2], prev / (2 * L), 1e-7);
  EXPECT_NEAR(s[1][2], second / L, 1e-7);
  EXPECT_NEAR(s[2][2], second / L, 1e-7);
  // batch mean: a second sequence with every head on BOS halves head 0's score
  auto q = torch::cat({p, torch::zeros({1, 3, T, T}).index_put_({torch::indexing::Slice(), torch::indexing::Slice(),
                                                                   torch::indexing::Slice(), 0}, 1.0)});
  EXPECT_NEAR(pattern_scores(q, L)[0][0], 0.5 + 0.5 / (2 * L), 1e-7);
  EXPECT_THROW(pattern_scores(p, L + 1), Error);
}

TEST(HeadDetectors, ProbeSequencesRepeatPrintableBytes) {
  model::LoadedModel m;
  m.config = test::tiny_config("byte_attn_only");
  m.config.n_ctx = 64;
  m.model = model::Transformer(m.config);
  m.tokenizer = std::make_shared<model::ByteTokenizer>();
  auto t = probe_sequences(m, 20, 4, 7);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{4, 41}));
  EXPECT_TRUE(torch::equal(t.narrow(1, 1, 20), t.narrow(1, 21, 20)));
  EXPECT_TRUE((t.select(1, 0) == m.config.bos_id).all().item<bool>());
  auto body = t.narrow(1, 1, 40);
  EXPECT_TRUE((body >= 32).logical_and(body <= 126).all().item<bool>());
  EXPECT_TRUE(torch::equal(t, probe_sequences(m, 20, 4, 7)));   // seeded
  EXPECT_FALSE(torch::equal(t, probe_sequences(m, 20, 4, 8)));
  EXPECT_THROW(probe_sequences(m, 40, 4, 7), Error);  // 81 positions > n_ctx 64
}

// A shipped model's copying: its best induction score on [BOS, r, r] (|r| = 50, 8 probes) and the bits per
// byte of the first and second copy of 16 random printable strings of 50 bytes.
struct Copying {
  double max_induction, first_bpb, second_bpb;
};
Copying shipped_copying(const std::string& name) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/" + name);
  const auto r = circuits::repeated_span_bits(m, circuits::random_printable(50, 16, 0));
  return {HeadScores::max_of(head_scores(m, 50, 8, 0).induction), r.first_bpb, r.second_bpb};
}

// A shipped model that copies: an induction head of at least `min_induction`, an unknown first copy and a
// second one of at most `max_second` bits/byte.
void expect_copier(const std::string& name, double min_induction, double max_second) {
  const auto c = shipped_copying(name);
  EXPECT_GE(c.max_induction, min_induction) << name;
  EXPECT_GT(c.first_bpb, 6.0) << name;
  EXPECT_LE(c.second_bpb, max_second) << name;
}

// The shipped model organisms (data/models): the two-layer attention-only model has an induction head and
// copies a repeated random string; the one-layer control has neither (it cannot compose two heads).
TEST(ShippedOrganisms, TwoLayerModelHasAnInductionHeadAndTheOneLayerControlDoesNot) {
  expect_copier("ccc-attn2", 0.4, 1.0);
  const auto one = shipped_copying("ccc-attn1");
  EXPECT_LT(one.max_induction, 0.1);
  // a single layer cannot copy by position; it only raises the bytes already seen (r uses ~40 of the 95
  // printable bytes: about 1 bit), far from the two-layer model's copy
  EXPECT_GT(one.second_bpb, 4.0);
}

// The l-sized models: the default (ccc-byte-l1024, data/train_default.sh, stage F; measured: induction 0.707,
// random strings 6.82 -> 1.17 bits/byte) and the from-scratch staged recipe's ccc-byte-l-icl (0.918, 6.86 -> 1.23)
// copy; the scale family's ccc-byte-l, which both started from or matches, has no induction head.
TEST(ShippedOrganisms, TheLSizedIclModelsCopyAndTheFamilysLDoesNot) {
  expect_copier("default", 0.6, 1.5);
  expect_copier("ccc-byte-l-icl", 0.8, 2.0);
  const auto l = shipped_copying("ccc-byte-l");
  EXPECT_LT(l.max_induction, 0.1);
  EXPECT_GT(l.second_bpb, 6.0);
}

}  // namespace
}  // namespace ccc::circuits
