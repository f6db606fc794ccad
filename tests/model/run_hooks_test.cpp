// Hooks on the decode step, run records, the sweep primitive, gradients of bits and partial forwards.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "model/base/error.h"
#include "model/core/bits.h"
#include "model/core/hooks.h"
#include "model/core/score.h"
#include "model/core/transformer.h"
#include "model/formats/loader.h"
#include "model/formats/tokenizer.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/parallel.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

const auto& kFamilies = test::kTinyFamilies;

torch::Tensor tokens_for(const Transformer& m, int64_t b, int64_t p, uint64_t seed = 5) {
  return test::random_tokens(m, b, p, seed);
}

// The family's tiny config with d_head 8 (AVX2 decode kernels) or 4 (scalar ones).
Transformer model_for(const std::string& fam, int64_t d_head, uint64_t seed = 3) {
  auto c = test::tiny_config(fam);
  c.d_head = d_head;
  if (c.pos == PosKind::kRotary) c.rotary_dim = std::min<int64_t>(c.rotary_dim, d_head);
  return test::random_model(c, seed, 0.3);
}

struct CacheKind {
  const char* name;
  bool rolling;
  torch::ScalarType dtype;
};
const CacheKind kCaches[] = {{"fp32", false, torch::kFloat32}, {"fp16", false, torch::kHalf}, {"rolling fp16", true, torch::kHalf}};

// Logits of `steps` decode steps of every row (one forward per token), [b, steps, V].
torch::Tensor decode(Transformer& m, const torch::Tensor& toks, const CacheKind& ck, HookSet* hooks, int64_t cap = 0) {
  auto cache = m->make_cache(toks.size(0), cap, ck.rolling, ck.dtype);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < toks.size(1); ++i) out.push_back(m->forward(toks.narrow(1, i, 1), {hooks, &cache}));
  return torch::cat(out, 1);
}

TEST(DecodeHooksTest, ObserversEverywhereAreBitIdenticalOnEveryCache) {
  torch::InferenceMode g;
  for (const char* fam : kFamilies)
    for (int64_t dh : {4, 8})
      for (const auto& ck : kCaches) {
        auto m = model_for(fam, dh);
        if (ck.rolling && m->config().pos == PosKind::kLearned) continue;
        auto toks = tokens_for(m, 3, 20);
        const int64_t cap = ck.rolling ? 8 : 0;  // rolling: positions run past the window
        auto ref = decode(m, toks, ck, nullptr, cap);
        HookSet hooks;
        int64_t seen = 0;
        hooks.observe("*", [&](const torch::Tensor& t, const HookContext&) { seen += t.numel() > 0; });
        for (int l = 0; l < 2; ++l) hooks.observe(model::hook_name(l, model::kResult),
                                                  [&](const torch::Tensor&, const HookContext&) { ++seen; });
        hooks.cache("blocks.1.*");
        auto got = decode(m, toks, ck, &hooks, cap);
        EXPECT_TRUE(torch::equal(ref, got)) << fam << " dh " << dh << " " << ck.name << ": max diff "
                                            << test::max_abs_diff(ref, got);
        EXPECT_GT(seen, 20 * 20) << fam;
        // one watched layer: the other layers' arithmetic is untouched too
        HookSet one;
        one.observe("blocks.1.hook_resid_pre", [](const torch::Tensor&, const HookContext&) {});
        EXPECT_TRUE(torch::equal(ref, decode(m, toks, ck, &one, cap))) << fam << " " << ck.name;
        HookSet none;
        none.observe("nothing.*", [](const torch::Tensor&, const HookContext&) {});
        EXPECT_TRUE(torch::equal(ref, decode(m, toks, ck, &none, cap))) << fam << " " << ck.name;
      }
}

TEST(DecodeHooksTest, DecodeThreadsNeverChangeTheLogits) {
  torch::InferenceMode g;
  for (const char* fam : kFamilies) {
    auto c = test::tiny_config(fam);
    c.d_model = 256;  // big enough that GEMMs (and, with 5 rows, attention) are split
    c.d_head = 64;
    c.d_mlp = 1024;
    auto m = test::random_model(c, 5, 0.05);
    for (int64_t b : {1, 5}) {
      auto toks = tokens_for(m, b, 40);
      torch::Tensor one, two;
      {
        ScopedDecodeThreads t(1);
        one = decode(m, toks, kCaches[0], nullptr);
      }
      {
        ScopedDecodeThreads t(2);
        two = decode(m, toks, kCaches[0], nullptr);
      }
      EXPECT_TRUE(torch::equal(one, two)) << fam << " b " << b << " max diff " << test::max_abs_diff(one, two);
    }
  }
}

TEST(DecodeHooksTest, EditorsOnTheDecodeStepMatchTheFullForward) {
  torch::InferenceMode g;
  for (const char* fam : kFamilies)
    for (int64_t dh : {4, 8}) {
      auto m = model_for(fam, dh);
      const auto& c = m->config();
      auto toks = tokens_for(m, 2, 12);
      struct Edit {
        std::string site;
        Editor fn;
      };
      std::vector<Edit> edits = {
          {"blocks.0.attn.hook_z", [](const torch::Tensor& z, const HookContext&) {
             auto y = z.clone();
             y.select(2, 1).zero_();
             return y;
           }},
          {"blocks.1.attn.hook_pattern", [](const torch::Tensor& p, const HookContext&) {
             return p * 0.5;  // halves every head's output
           }},
          {"blocks.1.attn.hook_v", [](const torch::Tensor& v, const HookContext&) { return v * -1.5; }},
          {"blocks.0.ln1.hook_scale", [](const torch::Tensor& s, const HookContext&) { return s * 2.0; }},
          {"blocks.1.attn.hook_result", [](const torch::Tensor& r, const HookContext&) {
             auto y = r.clone();
             y.select(2, 0).zero_();
             return y;
           }}};
      if (!c.attn_only) {
        edits.push_back({"blocks.0.mlp.hook_post", [](const torch::Tensor& x, const HookContext&) {
                           auto y = x.clone();
                           y.narrow(2, 0, 7).zero_();
                           return y;
                         }});
      }
      for (const auto& e : edits) {
        HookSet hooks;
        hooks.edit(e.site, e.fn);
        auto full = m->forward(toks, {&hooks});
        for (const auto& ck : kCaches) {
          if (ck.rolling && c.pos == PosKind::kLearned) continue;
          auto got = decode(m, toks, ck, &hooks);
          // fp16 keys and values: within twice the unedited model's own fp16 error
          const double tol = ck.dtype == torch::kHalf
                                 ? 2 * test::max_abs_diff(decode(m, toks, ck, nullptr), m->forward(toks)) + 1e-4
                                 : 1e-4;
          EXPECT_LT(test::max_abs_diff(got, full), tol) << fam << " dh " << dh << " " << e.site << " " << ck.name;
        }
        EXPECT_GT(test::max_abs_diff(full, m->forward(toks)), 1e-3) << fam << " " << e.site << " had no effect";
      }
    }
}

TEST(DecodeHooksTest, DecodePatternIsTheFullPatternOverCacheSlots) {
  torch::InferenceMode g;
  auto m = model_for("llama", 8);
  const int64_t W = 6, n = 15;
  auto toks = tokens_for(m, 2, n);
  HookSet dec_h;
  std::vector<torch::Tensor> dec_patterns;
  std::vector<std::vector<int64_t>> dec_kpos;
  dec_h.observe("blocks.1.attn.hook_pattern", [&](const torch::Tensor& t, const HookContext& ctx) {
    ASSERT_NE(ctx.key_pos, nullptr);
    dec_patterns.push_back(t.clone());
    dec_kpos.push_back(*ctx.key_pos);
  });
  auto cache = m->make_cache(2, W, /*rolling=*/true);
  for (int64_t i = 0; i < n; ++i) m->forward(toks.narrow(1, i, 1), {&dec_h, &cache});
  ASSERT_EQ(dec_patterns.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto& kp = dec_kpos[i];
    ASSERT_EQ(static_cast<int64_t>(kp.size()), std::min(i + 1, W));
    auto p = dec_patterns[i];  // [2, H, 1, n]
    for (size_t s = 0; s < kp.size(); ++s) {
      EXPECT_LE(kp[s], i);
      EXPECT_GT(kp[s], i - W);
      EXPECT_EQ(kp[s] % W, static_cast<int64_t>(s));
    }
    EXPECT_LT((p.sum(-1) - 1).abs().max().item<double>(), 1e-5);
  }
  // chunked rolling forward (full path) exposes [W cached slots + new] columns with their key positions:
  // the probability each key position gets must equal the decode step's
  HookSet chunk_h;
  std::vector<int64_t> chunk_kpos;
  torch::Tensor chunk_pattern;
  chunk_h.observe("blocks.1.attn.hook_pattern", [&](const torch::Tensor& t, const HookContext& ctx) {
    chunk_pattern = t.clone();
    chunk_kpos = *ctx.key_pos;
  });
  auto cache2 = m->make_cache(2, W, /*rolling=*/true);
  m->forward(toks.narrow(1, 0, n - 3), {nullptr, &cache2});
  m->forward(toks.narrow(1, n - 3, 3), {&chunk_h, &cache2});
  const int64_t q = n - 1;  // last query of the chunk = row 2 of chunk_pattern
  for (size_t col = 0; col < chunk_kpos.size(); ++col) {
    const int64_t kpos = chunk_kpos[col];
    const auto& dk = dec_kpos[q];
    auto it = std::find(dk.begin(), dk.end(), kpos);
    const double full_p = chunk_pattern.select(2, 2).select(2, static_cast<int64_t>(col)).abs().max().item<double>();
    if (it == dk.end()) {
      EXPECT_EQ(full_p, 0.0) << "key position " << kpos << " outside the decode window has weight";
      continue;
    }
    auto a = chunk_pattern.select(2, 2).select(2, static_cast<int64_t>(col));
    auto b = dec_patterns[q].select(2, 0).select(2, it - dk.begin());
    EXPECT_LT(test::max_abs_diff(a, b), 5e-3) << "key position " << kpos;
  }
}

TEST(DecodeHooksTest, PatchSweepEqualsOneEditorPerRow) {
  torch::InferenceMode g;
  auto m = model_for("gpt_neox", 8);
  const int64_t B = 6, H = m->config().n_heads;
  auto toks = tokens_for(m, B, 10);
  auto mask = torch::zeros({B, 1, H, 1}, torch::kBool);
  HookSet per_row, sweep;
  for (int64_t r = 0; r < B; ++r) {
    const int64_t h = r % H;
    mask[r][0][h][0] = true;
    per_row.edit("blocks.1.attn.hook_z", [h](const torch::Tensor& z, const HookContext&) {
      auto y = z.clone();
      y.select(2, h).zero_();
      return y;
    }, {r});
  }
  sweep.patch("blocks.1.attn.hook_z", mask, torch::zeros({}));
  for (const auto& ck : kCaches) {
    auto a = decode(m, toks, ck, &per_row), b = decode(m, toks, ck, &sweep);
    EXPECT_TRUE(torch::equal(a, b)) << ck.name << " max diff " << test::max_abs_diff(a, b);
    EXPECT_GT(test::max_abs_diff(a, decode(m, toks, ck, nullptr)), 1e-4) << ck.name;
  }
  EXPECT_TRUE(torch::equal(m->forward(toks, {&per_row}), m->forward(toks, {&sweep})));
  HookSet bad;
  bad.patch("blocks.1.attn.hook_z", torch::zeros({B + 1, 1, H, 1}, torch::kBool), torch::zeros({}));
  EXPECT_THROW(m->forward(toks, {&bad}), std::exception);
}

TEST(RunInfoTest, RollingScorerReportsStreamsPositionsOffsetsAndLiveRows) {
  torch::InferenceMode g;
  auto m = model_for("llama", 8);
  std::vector<std::vector<int64_t>> seqs = {{1, 5, 6, 7, 8, 9, 10}, {1, 11, 12}};
  std::vector<std::vector<int64_t>> offs = {{-1, 100, 101, 102, 103, 104, 105}, {-1, 200, 203}};
  HookSet hooks;
  int64_t calls = 0;
  hooks.observe("blocks.0.hook_resid_pre", [&](const torch::Tensor& t, const HookContext& ctx) {
    ASSERT_NE(ctx.run, nullptr);
    const RunInfo& r = *ctx.run;
    ASSERT_EQ(r.batch, 2);
    ASSERT_EQ(r.pos, t.size(1));
    EXPECT_EQ(r.stream, (std::vector<int64_t>{7, 8}));
    for (int64_t row = 0; row < 2; ++row)
      for (int64_t i = 0; i < r.pos; ++i) {
        const int64_t p = r.position_at(row, i);
        if (p < 0) continue;
        EXPECT_EQ(p, ctx.pos_offset + i);
        EXPECT_EQ(r.byte_offset_at(row, i), offs[row][p]);
      }
    // row 1 (3 tokens) is padding once its two predictions are made
    EXPECT_EQ(r.live[1], ctx.pos_offset < 2 ? 1 : 0);
    ++calls;
  });
  auto with = score_bits_rolling(m, seqs, 4, 2, &hooks, &offs, 7);
  auto without = score_bits_rolling(m, seqs, 4, 2);
  EXPECT_EQ(with, without);
  EXPECT_EQ(calls, 3);
}

TEST(RunInfoTest, WindowedScorerReportsAbsolutePositions) {
  torch::InferenceMode g;
  auto m = model_for("gpt2", 8);
  std::vector<int64_t> toks;
  for (int i = 0; i < 40; ++i) toks.push_back(i % 49);
  std::vector<int64_t> offs(40);
  for (int i = 0; i < 40; ++i) offs[i] = i == 0 ? -1 : 3 * i;
  HookSet hooks;
  std::set<int64_t> positions;
  hooks.observe("hook_embed", [&](const torch::Tensor& t, const HookContext& ctx) {
    const RunInfo& r = *ctx.run;
    for (int64_t row = 0; row < r.batch; ++row)
      for (int64_t i = 0; i < r.pos; ++i) {
        positions.insert(r.position_at(row, i));
        EXPECT_EQ(r.byte_offset_at(row, i), offs[r.position_at(row, i)]);
        EXPECT_EQ(r.stream[row], 4);
      }
  });
  auto a = score_bits(m, toks, {16, 8, 2}, &hooks, &offs, 4);
  EXPECT_EQ(a, score_bits(m, toks, {16, 8, 2}));
  EXPECT_EQ(positions.size(), 40u);
}

TEST(TokenizerOffsetsTest, ByteOffsetsAreExactForEveryTokenizer) {
  const std::string text = std::string("Once upon a time,\r\n Ünïcödé 🦙 \xff\xfe text\t\t  end. ") + "x";
  std::vector<std::shared_ptr<Tokenizer>> toks = {std::make_shared<ByteTokenizer>()};
  const auto tok512 = test::shared_path("models/tok512.bin");
  if (!tok512.empty()) toks.push_back(load_tokenizer(tok512, 512));
  const auto gpt2 = test::shared_path("tokenizers/gpt2");
  if (!gpt2.empty()) toks.push_back(load_tokenizer(gpt2, 50257));
  for (const auto& tk : toks) {
    auto ids = tk->encode(text);
    auto offs = tk->byte_offsets(ids);
    ASSERT_EQ(offs.size(), ids.size());
    int64_t covered = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      std::string bytes = tk->token_bytes(ids[i]);
      if (i == 0 && tk->prefix_bytes() > 0) bytes.erase(0, tk->prefix_bytes());
      EXPECT_EQ(text.substr(offs[i], bytes.size()), bytes) << tk->kind() << " token " << i;
      EXPECT_EQ(offs[i], covered) << tk->kind() << " token " << i;
      covered += static_cast<int64_t>(bytes.size());
    }
    EXPECT_EQ(covered, static_cast<int64_t>(text.size())) << tk->kind();
  }
  EXPECT_GE(toks.size(), 1u);
}

TEST(BitsTest, TokenBitsIsMinusLog2Softmax) {
  torch::manual_seed(2);
  auto logits = torch::randn({3, 5, 11}, torch::kFloat64);
  auto tgt = torch::randint(0, 11, {3, 5}, torch::kInt64);
  auto bits = token_bits(logits, tgt);
  auto p = torch::softmax(logits, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1);
  EXPECT_LT(test::max_abs_diff(bits, -torch::log2(p)), 1e-12);
  EXPECT_NEAR(total_bits(logits, tgt).item<double>(), bits.sum().item<double>(), 1e-12);
  EXPECT_THROW(token_bits(logits, tgt.narrow(1, 0, 4)), Error);
}

// d total_bits / d activation by autograd vs central finite differences, in double precision.
TEST(BitsTest, GradientsOfBitsMatchFiniteDifferences) {
  for (const char* fam : {"gpt2", "llama"}) {
    auto m = model_for(fam, 4, 11);
    m->to(torch::kFloat64);
    auto toks = tokens_for(m, 2, 7, 9);
    auto in = toks.narrow(1, 0, 6), tgt = toks.narrow(1, 1, 6);
    for (const std::string site : {"blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.ln1.hook_scale"}) {
      HookSet hooks;
      hooks.cache_grad(site);
      auto total = total_bits(m->forward(in, {&hooks}), tgt);
      total.backward();
      auto grad = hooks.grad(site);
      ASSERT_TRUE(grad.defined()) << site;
      const auto act = hooks.cached().at(site).detach();
      auto flat_grad = grad.reshape({-1});
      for (int64_t idx : {int64_t{0}, act.numel() / 3, act.numel() - 1}) {
        auto bits_at = [&](double delta) {
          torch::NoGradGuard ng;
          HookSet e;
          e.edit(site, [&](const torch::Tensor& x, const HookContext&) {
            auto y = x.clone(torch::MemoryFormat::Contiguous);
            y.view({-1})[idx] += delta;
            return y;
          });
          return total_bits(m->forward(in, {&e}), tgt).item<double>();
        };
        const double h = 1e-5;
        const double fd = (bits_at(h) - bits_at(-h)) / (2 * h);
        const double ad = flat_grad[idx].item<double>();
        EXPECT_NEAR(ad, fd, 1e-6 + 1e-5 * std::abs(fd)) << fam << " " << site << " element " << idx;
      }
    }
  }
}

TEST(PartialForwardTest, StopAndStartAtLayerComposeBitExactly) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    auto toks = tokens_for(m, 2, 9);
    auto ref = m->forward(toks);
    for (int L = 0; L <= m->config().n_layers; ++L) {
      RunOptions stop;
      stop.stop_at_layer = L;
      auto resid = m->forward(toks, stop);
      ASSERT_EQ(resid.sizes(), (std::vector<int64_t>{2, 9, m->config().d_model}));
      auto out = m->forward_from(resid, L);
      EXPECT_TRUE(torch::equal(ref, out)) << fam << " L=" << L << " max diff " << test::max_abs_diff(ref, out);
    }
    // hooks of earlier blocks do not run when starting later
    HookSet hooks;
    int64_t early = 0;
    hooks.observe("blocks.0.*", [&](const torch::Tensor&, const HookContext&) { ++early; });
    RunOptions stop1;
    stop1.stop_at_layer = 1;
    m->forward_from(m->forward(toks, stop1), 1, {&hooks});
    EXPECT_EQ(early, 0);
    EXPECT_THROW(m->forward_from(torch::zeros({1, 2, 3}), 0), Error);
  }
}

// The same composition on a cache, chunk by chunk: blocks before L fill one cache, blocks from L another.
TEST(PartialForwardTest, StopAndStartAtLayerComposeOnACache) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    if (m->config().pos != PosKind::kRotary) continue;
    auto toks = tokens_for(m, 2, 12);
    for (bool rolling : {false, true}) {
      const int64_t cap = rolling ? 5 : 12;
      auto whole = m->make_cache(2, cap, rolling);
      for (int L = 0; L < m->config().n_layers; ++L) {
        whole.reset();
        auto lower = m->make_cache(2, cap, rolling), upper = m->make_cache(2, cap, rolling);
        for (int64_t s = 0; s < 12; s += 4) {
          auto in = toks.narrow(1, s, 4);
          auto ref = m->forward(in, {nullptr, &whole});
          RunOptions stop;
          stop.stop_at_layer = L;
          stop.cache = &lower;
          auto resid = m->forward(in, stop);
          auto out = m->forward_from(resid, L, {nullptr, &upper});
          EXPECT_LT(test::max_abs_diff(ref, out), 1e-5) << fam << " rolling " << rolling << " L=" << L << " s=" << s;
          EXPECT_EQ(upper.len, s + 4);
        }
      }
    }
  }
}

// Branches from the clean residual stream score as whole runs with the branch's hooks: a branch without
// hooks as the clean rows, a branch editing block L as the same edit over every block.
TEST(PartialForwardTest, BranchedRollingScoresEqualWholeRuns) {
  auto m = test::tiny_model("llama");
  std::vector<std::vector<int64_t>> seqs;
  std::mt19937 rng(3);
  for (int64_t len : {70, 41, 2}) {
    seqs.emplace_back();
    for (int64_t i = 0; i < len; ++i) seqs.back().push_back(static_cast<int64_t>(rng() % m->config().d_vocab));
  }
  const int64_t W = 16, chunk = 8;
  const auto clean = score_bits_rolling(m, seqs, W, chunk);
  HookSet edit;  // doubles blocks.1's MLP output in copy 1 (rows 3..5) only
  edit.edit("blocks.1.hook_mlp_out", [](const torch::Tensor& x, const HookContext&) {
    auto y = x.clone();
    y.narrow(0, 3, 3).mul_(2);
    return y;
  });
  for (bool with_clean : {true, false}) {
    const auto got = score_bits_rolling_branched(m, seqs, W, chunk, {{0, 1, nullptr}, {1, 2, &edit}}, with_clean);
    ASSERT_EQ(got.branches.size(), 2u);
    ASSERT_EQ(got.branches[0].size(), 3u);
    ASSERT_EQ(got.branches[1].size(), 6u);
    if (with_clean) {
      EXPECT_EQ(got.clean, clean);  // the clean pass only observes
    } else {
      EXPECT_TRUE(got.clean.empty());
    }
    std::vector<std::vector<int64_t>> two = seqs;
    two.insert(two.end(), seqs.begin(), seqs.end());
    const auto whole = score_bits_rolling(m, two, W, chunk, &edit);
    for (size_t r = 0; r < 6; ++r) {
      ASSERT_EQ(got.branches[1][r].size(), whole[r].size());
      double worst = 0;
      for (size_t i = 0; i < whole[r].size(); ++i) worst = std::max(worst, std::abs(got.branches[1][r][i] - whole[r][i]));
      EXPECT_LT(worst, 1e-5) << "row " << r;
      if (r < 3) {
        for (size_t i = 0; i < clean[r].size(); ++i) EXPECT_NEAR(got.branches[0][r][i], clean[r][i], 1e-5);
      } else if (whole[r].size() > 4) {
        EXPECT_GT(std::abs(whole[r][4] - clean[r - 3][4]), 1e-4) << "the edit changes the bits";
      }
    }
  }
  EXPECT_THROW(score_bits_rolling_branched(m, seqs, W, chunk, {{static_cast<int>(m->config().n_layers), 1, nullptr}}), Error);
}

TEST(ElementwiseTest, HalfConversionMatchesTorch) {
  torch::manual_seed(4);
  auto x = torch::cat({torch::randn({4096}) * 3, torch::randn({512}) * 1e-5, torch::randn({256}) * 7e4,
                       torch::tensor({0.0f, -0.0f, 65504.0f, 65520.0f, 1e-8f, 5.96e-8f, 2.98e-8f, 6.1e-5f,
                                      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})});
  auto ref = x.to(torch::kHalf);
  std::vector<uint16_t> got(x.numel());
  float_to_half(x.data_ptr<float>(), got.data(), x.numel());
  const auto* r = reinterpret_cast<const uint16_t*>(ref.data_ptr<at::Half>());
  int64_t bad = 0;
  for (int64_t i = 0; i < x.numel(); ++i) bad += got[i] != r[i];
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace ccc::model
