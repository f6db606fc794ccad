#include "model/core/transformer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "model/kernels/decode_attention.h"
#include "model/kernels/decode_gemm.h"
#include "model/kernels/elementwise.h"
#include "model/base/error.h"
#include "model/core/fused_ops.h"
#include "model/core/score.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

const auto& kFamilies = test::kTinyFamilies;

TEST(TransformerTest, IncrementalMatchesFullForward) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(11);
    const int64_t b = 3, p = 40;
    auto toks = torch::randint(0, m->config().d_vocab, {b, p}, torch::kInt64);
    auto full = m->forward(toks);
    // prefill 7 tokens, then one token at a time
    auto cache = m->make_cache(b);
    std::vector<torch::Tensor> parts{m->forward(toks.narrow(1, 0, 7), {nullptr, &cache})};
    for (int64_t i = 7; i < p; ++i) parts.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}));
    auto inc = torch::cat(parts, 1);
    const double diff = test::max_abs_diff(full, inc);
    EXPECT_LE(diff, 1e-4) << fam << ": max |dlogit| " << diff;
    EXPECT_EQ(cache.len, p);
  }
}

TEST(TransformerTest, RunsAreBitIdentical) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(12);
    auto toks = torch::randint(0, m->config().d_vocab, {2, 20}, torch::kInt64);
    EXPECT_TRUE(torch::equal(m->forward(toks), m->forward(toks))) << fam;
    std::vector<torch::Tensor> runs;
    for (int r = 0; r < 2; ++r) {
      auto cache = m->make_cache(2);
      std::vector<torch::Tensor> parts;
      for (int64_t i = 0; i < 20; ++i) parts.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}));
      runs.push_back(torch::cat(parts, 1));
    }
    EXPECT_TRUE(torch::equal(runs[0], runs[1])) << fam;
  }
}

TEST(TransformerTest, BatchRowsAreIndependent) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("llama");
  torch::manual_seed(13);
  auto toks = torch::randint(0, 50, {3, 12}, torch::kInt64);
  auto batched = m->forward(toks);
  for (int64_t r = 0; r < 3; ++r)
    EXPECT_LT(test::max_abs_diff(batched[r], m->forward(toks.narrow(0, r, 1))[0]), 1e-5);
}

TEST(TransformerTest, CausalityFutureTokensDoNotMatter) {
  torch::NoGradGuard g;
  for (const char* fam : kFamilies) {
    auto m = test::tiny_model(fam);
    torch::manual_seed(14);
    auto a = torch::randint(0, 50, {1, 10}, torch::kInt64);
    auto b = a.clone();
    b[0][9] = (a[0][9].item<int64_t>() + 1) % 50;
    auto la = m->forward(a), lb = m->forward(b);
    EXPECT_LT(test::max_abs_diff(la.narrow(1, 0, 9), lb.narrow(1, 0, 9)), 1e-6) << fam;
    EXPECT_GT(test::max_abs_diff(la.narrow(1, 9, 1), lb.narrow(1, 9, 1)), 1e-4) << fam;
  }
}

TEST(TransformerTest, RejectsBadInputs) {
  auto m = test::tiny_model("gpt2");
  EXPECT_THROW(m->forward(torch::full({1, 3}, 50, torch::kInt64)), Error);      // id == d_vocab
  EXPECT_THROW(m->forward(torch::zeros({1, 65}, torch::kInt64)), Error);         // beyond n_ctx
  auto cache = m->make_cache(2);
  EXPECT_THROW(m->forward(torch::zeros({1, 3}, torch::kInt64), {nullptr, &cache}), Error);  // batch mismatch
}

TEST(ScoreTest, SlidingWindowScoresEveryTokenOnceWithEnoughContext) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt2");
  torch::manual_seed(15);
  auto t = torch::randint(0, 50, {150}, torch::kInt64);
  std::vector<int64_t> toks(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 150);
  auto bits = score_bits(m, toks, {32, 16});
  ASSERT_EQ(bits.size(), 149u);
  // First window: direct forward. Window k: tokens [16k, 16k+32), scores targets 16k+17..16k+31.
  auto logits = m->forward(t.narrow(0, 0, 32).unsqueeze(0))[0];
  auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
  for (int64_t i = 0; i < 31; ++i)
    EXPECT_NEAR(bits[i], -lp[i][toks[i + 1]].item<double>() / std::log(2.0), 1e-5);
  auto w2 = m->forward(t.narrow(0, 16, 32).unsqueeze(0))[0];
  auto lp2 = torch::log_softmax(w2.to(torch::kFloat64), -1);
  // target 32 is predicted in window 1 (start 16) at position 15
  EXPECT_NEAR(bits[31], -lp2[15][toks[32]].item<double>() / std::log(2.0), 1e-5);
  // whole sequence within one window gives the plain forward's bits
  auto short_bits = score_bits(m, std::vector<int64_t>(toks.begin(), toks.begin() + 20));
  for (int64_t i = 0; i < 19; ++i) EXPECT_NEAR(short_bits[i], bits[i], 1e-5);
}

// StreamScorer reproduces score_bits exactly however the tokens arrive, at every sequence length around
// window and run boundaries (runs of 2 windows of 32 with stride 8, 12 and 31).
TEST(ScoreTest, StreamScorerMatchesWholeSequenceScoring) {
  torch::NoGradGuard g;
  auto m = test::tiny_model("gpt2");
  torch::manual_seed(16);
  auto t = torch::randint(0, 50, {400}, torch::kInt64);
  const std::vector<int64_t> all(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 400);
  std::mt19937 rng(3);
  for (int64_t stride : {8, 12, 31}) {
    const WindowPolicy pol{32, stride, 2};
    for (size_t n : {1, 2, 31, 32, 33, 40, 41, 56, 57, 64, 65, 97, 120, 399, 400}) {
      const std::vector<int64_t> toks(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
      const auto want = score_bits(m, toks, pol);
      std::vector<double> got;
      StreamScorer scorer(m, pol, [&](const double* b, size_t k) { got.insert(got.end(), b, b + k); }, 2);
      for (size_t at = 0; at < n;) {
        const size_t k = std::min(n - at, static_cast<size_t>(rng() % 40));
        scorer.push(toks.data() + at, k);
        at += k;
      }
      scorer.finish();
      ASSERT_EQ(got.size(), want.size()) << "n " << n << " stride " << stride;
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
      EXPECT_LT(worst, 1e-9) << "n " << n << " stride " << stride << ": max |difference| " << worst;
    }
  }
}

// A rotary byte model with d_head 8, so the AVX2 decode kernel runs where the CPU has it.
Transformer rolling_model(int64_t n_layers, uint64_t seed) {
  auto c = test::tiny_config("byte_attn_only");
  c.attn_only = false;
  c.pos = PosKind::kRotary;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.d_head = 8;
  c.rotary_dim = 8;
  c.n_layers = n_layers;
  c.n_ctx = 32;
  return test::random_model(c, seed, 0.3);
}

TEST(DecodeAttentionTest, MatchesSoftmaxAttentionForEveryShape) {
  torch::manual_seed(21);
  for (int64_t dh : {4, 8, 64}) {
    for (int64_t n : {1, 7, 8, 29}) {
      const int64_t B = 3, H = 4, KH = 2, cap = 32;
      auto q = torch::randn({B, H, dh}), k = torch::randn({B, KH, cap, dh}) * 2, v = torch::randn({B, KH, cap, dh});
      auto z = torch::empty({B, H, dh}), zh = torch::empty({B, H, dh});
      const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
      decode_attention(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), z.data_ptr<float>(), B, H, KH,
                       cap, n, dh, scale);
      auto ref_of = [&](const torch::Tensor& kf, const torch::Tensor& vf) {
        auto kk = kf.narrow(2, 0, n).repeat_interleave(H / KH, 1), vv = vf.narrow(2, 0, n).repeat_interleave(H / KH, 1);
        auto p = torch::softmax(torch::matmul(q.unsqueeze(2), kk.transpose(-1, -2)) * scale, -1);
        return torch::matmul(p, vv).squeeze(2);
      };
      const double diff = test::max_abs_diff(z, ref_of(k, v));
      EXPECT_LT(diff, 1e-5) << "dh " << dh << " n " << n << " (" << decode_attention_path(dh) << "): max |dz| " << diff;
      // fp16 storage: the same attention over the fp16-rounded keys and values
      auto k16 = k.to(torch::kHalf), v16 = v.to(torch::kHalf);
      decode_attention(q.data_ptr<float>(), reinterpret_cast<const uint16_t*>(k16.data_ptr<at::Half>()),
                       reinterpret_cast<const uint16_t*>(v16.data_ptr<at::Half>()), zh.data_ptr<float>(), B, H, KH, cap,
                       n, dh, scale);
      const double diff16 = test::max_abs_diff(zh, ref_of(k16.to(torch::kFloat), v16.to(torch::kFloat)));
      EXPECT_LT(diff16, 1e-5) << "fp16 dh " << dh << " n " << n << ": max |dz| " << diff16;
    }
  }
}

// The decode path's row norms compute their statistics in double, element by element in index order; the
// AVX2 path takes four rows per lane set and must give the same bits as that definition (the compressed
// bytes depend on them), for any row count and width.
TEST(DecodeAttentionTest, RowNormsEqualTheirDefinitionBitForBit) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.3f, 2.0f);
  for (int64_t rows : {1, 3, 4, 5, 8, 9}) {
    for (int64_t d : {1, 3, 4, 7, 64, 96, 257}) {
      std::vector<float> x(rows * d), w(d), b(d);
      for (auto& v : x) v = nd(rng);
      for (auto& v : w) v = nd(rng);
      for (auto& v : b) v = nd(rng);
      const float eps = 1e-5f;
      std::vector<float> y(rows * d), mean(rows), scale(rows), y2(rows * d), scale2(rows);
      layer_norm_rows(x.data(), rows, d, w.data(), b.data(), eps, y.data(), mean.data(), scale.data());
      rms_norm_rows(x.data(), rows, d, w.data(), eps, y2.data(), scale2.data());
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x.data() + r * d;
        double s = 0, q = 0;
        for (int64_t i = 0; i < d; ++i) s += xr[i], q += static_cast<double>(xr[i]) * xr[i];
        const double mu = s / static_cast<double>(d);
        double v = 0;
        for (int64_t i = 0; i < d; ++i) v += (xr[i] - mu) * (xr[i] - mu);
        const float want_mean = static_cast<float>(mu), want_scale = static_cast<float>(std::sqrt(v / d + eps));
        const float want_rms = static_cast<float>(std::sqrt(q / d + eps));
        ASSERT_EQ(mean[r], want_mean) << "rows " << rows << " d " << d << " row " << r;
        ASSERT_EQ(scale[r], want_scale) << "rows " << rows << " d " << d << " row " << r;
        ASSERT_EQ(scale2[r], want_rms) << "rows " << rows << " d " << d << " row " << r;
        for (int64_t i = 0; i < d; ++i) {
          const float ln = (xr[i] - want_mean) * (1.0f / want_scale) * w[i] + b[i];
          const float rms = (xr[i] - 0.0f) * (1.0f / want_rms) * w[i];
          ASSERT_EQ(y[r * d + i], ln) << "rows " << rows << " d " << d << " row " << r << " i " << i;
          ASSERT_EQ(y2[r * d + i], rms) << "rows " << rows << " d " << d << " row " << r << " i " << i;
        }
      }
    }
  }
}

// The decode GEMM: y = x Wᵀ + b for any row count, and each row's bits independent of how many rows share
// the call (the kernel blocks rows by 6, 4, 3 ...; a row's sums run bias-first, k ascending in every block).
TEST(DecodeAttentionTest, PackedLinearRowsDoNotDependOnTheirBatch) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  const int64_t n = 37, k = 29;  // a partial last panel
  std::vector<float> w(n * k), b(n);
  for (auto& v : w) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  const auto packed = pack_linear(w.data(), n, k);
  for (int64_t m = 1; m <= 20; ++m) {
    std::vector<float> x(m * k), y(m * n), y1(n);
    for (auto& v : x) v = nd(rng);
    packed_linear(x.data(), m, k, packed, b.data(), y.data());
    for (int64_t r = 0; r < m; ++r) {
      packed_linear(x.data() + r * k, 1, k, packed, b.data(), y1.data());
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_EQ(y[r * n + j], y1[j]) << "m " << m << " row " << r << " col " << j;
        double want = b[j];
        for (int64_t i = 0; i < k; ++i) want += static_cast<double>(x[r * k + i]) * w[j * k + i];
        ASSERT_NEAR(y1[j], want, 1e-4 * (1 + std::abs(want))) << "m " << m << " row " << r << " col " << j;
      }
    }
  }
}

TEST(DecodeAttentionTest, FastGeluMatchesTorch) {
  auto x = torch::linspace(-12, 12, 100003);
  auto y = torch::empty_like(x);
  gelu_tanh_forward(x.data_ptr<float>(), y.data_ptr<float>(), y.numel());
  const double diff = test::max_abs_diff(y, torch::gelu(x, "tanh"));
  EXPECT_LT(diff, 2e-6) << "max |dgelu| " << diff;
}

TEST(FusedOpsTest, GeluAndRotaryMatchTorchValuesAndGradients) {
  torch::manual_seed(25);
  auto x = (torch::randn({3, 5, 7}) * 3).requires_grad_(true);
  auto g = torch::randn({3, 5, 7});
  auto gx = torch::autograd::grad({gelu_tanh(x)}, {x}, {g})[0];
  auto gr = torch::autograd::grad({torch::gelu(x, "tanh")}, {x}, {g})[0];
  EXPECT_LT(test::max_abs_diff(gelu_tanh(x), torch::gelu(x, "tanh")), 2e-6);
  EXPECT_LT(test::max_abs_diff(gx, gr), 1e-5);
  for (int64_t rd : {8, 4}) {  // full and partial rotary
    auto q = torch::randn({2, 6, 3, 8}).requires_grad_(true);
    auto freqs = torch::rand({6, rd / 2}) * 3;
    auto cos = torch::cat({freqs, freqs}, -1).cos(), sin = torch::cat({freqs, freqs}, -1).sin();
    const int64_t half = rd / 2;
    auto ref = [&](const torch::Tensor& t) {
      auto c = cos.view({1, 6, 1, rd}), s = sin.view({1, 6, 1, rd});
      auto xr = t.narrow(-1, 0, rd);
      auto out = xr * c + torch::cat({-xr.narrow(-1, half, half), xr.narrow(-1, 0, half)}, -1) * s;
      return rd == 8 ? out : torch::cat({out, t.narrow(-1, rd, 8 - rd)}, -1);
    };
    auto gq = torch::randn({2, 6, 3, 8});
    EXPECT_LT(test::max_abs_diff(rotary_embed(q, cos, sin), ref(q)), 1e-6) << rd;
    auto a = torch::autograd::grad({rotary_embed(q, cos, sin)}, {q}, {gq})[0];
    auto b = torch::autograd::grad({ref(q)}, {q}, {gq})[0];
    EXPECT_LT(test::max_abs_diff(a, b), 1e-6) << rd;
  }
}

TEST(FusedOpsTest, AttentionMatmulMatchesBmmAndIgnoresThreadCount) {
  torch::manual_seed(26);
  for (int64_t k : {3, 64}) {  // tiny shapes take LibTorch's naive loop, larger ones BLAS
    auto a = torch::randn({6, 5, k}).requires_grad_(true), b = torch::randn({6, k, 7}).requires_grad_(true);
    auto mask = torch::randn({1, 5, 7});
    auto g = torch::randn({6, 5, 7});
    auto ref = torch::baddbmm(mask, a, b, 1.0, 0.5);
    auto out = attention_matmul(a, b, 0.5, mask);
    EXPECT_LT(test::max_abs_diff(out, ref), 1e-5);
    auto ga = torch::autograd::grad({out}, {a, b}, {g});
    auto gr = torch::autograd::grad({ref}, {a, b}, {g});
    EXPECT_LT(test::max_abs_diff(ga[0], gr[0]), 1e-5);
    EXPECT_LT(test::max_abs_diff(ga[1], gr[1]), 1e-5);
    EXPECT_LT(test::max_abs_diff(attention_matmul(a, b), torch::bmm(a, b)), 1e-5);
    const int threads = torch::get_num_threads();
    torch::set_num_threads(1);
    auto one = attention_matmul(a, b, 0.5, mask);
    torch::set_num_threads(2);
    auto two = attention_matmul(a, b, 0.5, mask);
    torch::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(one, two));
  }
}

TEST(FusedOpsTest, CausalAttentionMatchesTheFormulaInDoubleWithGradients) {
  torch::manual_seed(27);
  // T = 300: two full query blocks of 128 and a ragged one; T = 5: one short block
  for (int64_t T : {300, 5}) {
    const int64_t n = 3, dh = 16;
    const double scale = 0.25;
    auto q = torch::randn({n, T, dh}).requires_grad_(true), k = torch::randn({n, T, dh}).requires_grad_(true),
         v = torch::randn({n, T, dh}).requires_grad_(true);
    auto gz = torch::randn({n, T, dh});
    auto qd = q.detach().to(torch::kFloat64).requires_grad_(true), kd = k.detach().to(torch::kFloat64).requires_grad_(true),
         vd = v.detach().to(torch::kFloat64).requires_grad_(true);
    auto mask = torch::ones({T, T}, torch::kBool).triu(1);
    auto ref = torch::matmul(torch::softmax(torch::matmul(qd, kd.transpose(1, 2)).mul(scale).masked_fill(mask, -INFINITY), -1), vd);
    auto gref = torch::autograd::grad({ref}, {qd, kd, vd}, {gz.to(torch::kFloat64)});
    auto z = causal_attention(q, k, v, scale);
    auto gf = torch::autograd::grad({z}, {q, k, v}, {gz});
    EXPECT_LT(test::max_abs_diff(z.to(torch::kFloat64), ref), 2e-6) << T;
    for (int i = 0; i < 3; ++i) EXPECT_LT(test::max_abs_diff(gf[i].to(torch::kFloat64), gref[i]), 2e-5) << T << " grad " << i;
    // the hooked pieces: bit-identical forward, the same gradients
    auto s = causal_scores(q, k, scale);
    auto zp = causal_pattern_v(causal_softmax(s), v);
    EXPECT_TRUE(torch::equal(zp, z)) << T << " max diff " << test::max_abs_diff(zp, z);
    {  // without a graph the pattern lives in a one-block scratch: the same bits
      torch::NoGradGuard no_grad;
      auto zn = causal_attention(q, k, v, scale);
      EXPECT_TRUE(torch::equal(zn, z)) << T << " max diff " << test::max_abs_diff(zn, z);
    }
    EXPECT_TRUE(torch::isinf(s.masked_select(mask)).all().item<bool>());
    auto gp = torch::autograd::grad({zp}, {q, k, v}, {gz});
    for (int i = 0; i < 3; ++i) EXPECT_LT(test::max_abs_diff(gp[i].to(torch::kFloat64), gref[i]), 2e-5) << T << " piece grad " << i;
    // the double-precision form is the formula
    EXPECT_LT(test::max_abs_diff(causal_attention(qd, kd, vd, scale), ref), 1e-12);
    // one thread or two: the same bits
    const int threads = torch::get_num_threads();
    torch::set_num_threads(1);
    auto one = causal_attention(q, k, v, scale);
    torch::set_num_threads(2);
    auto two = causal_attention(q, k, v, scale);
    torch::set_num_threads(threads);
    EXPECT_TRUE(torch::equal(one, two)) << T;
  }
  // an edited pattern with weight on later keys is honoured: pattern · v in full
  torch::NoGradGuard no_grad;
  auto pattern = torch::rand({2, 200, 200}), v = torch::randn({2, 200, 8});
  EXPECT_LT(test::max_abs_diff(causal_pattern_v(pattern, v), torch::matmul(pattern, v)), 1e-4);
  // edited scores past the diagonal take part in the softmax
  auto scores = torch::randn({2, 6, 6});
  EXPECT_LT(test::max_abs_diff(causal_softmax(scores), torch::softmax(scores, -1)), 1e-6);
}

TEST(RollingCacheTest, MatchesFullForwardWithinTheWindow) {
  torch::NoGradGuard g;
  auto m = rolling_model(2, 3);
  torch::manual_seed(22);
  auto toks = torch::randint(0, 256, {3, 20}, torch::kInt64);
  auto full = m->forward(toks);
  auto cache = m->make_cache(3, 32, /*rolling=*/true);
  std::vector<torch::Tensor> parts{m->forward(toks.narrow(1, 0, 5), {nullptr, &cache})};
  for (int64_t i = 5; i < 20; ++i) parts.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}));
  const double diff = test::max_abs_diff(full, torch::cat(parts, 1));
  EXPECT_LE(diff, 1e-4) << "max |dlogit| " << diff;
}

TEST(RollingCacheTest, OneLayerEqualsAFreshForwardOverTheLastWindow) {
  // With one layer, keys and values depend only on their token and position, so the rolling cache's
  // prediction at position m must equal a plain forward over tokens [m - W + 1, m] (rotary scores depend
  // only on distances): an independent check of the ring slots, the mask and rotary past n_ctx.
  torch::NoGradGuard g;
  auto m = rolling_model(1, 4);
  const int64_t W = 12, n = 90;  // n > n_ctx = 32: positions past the rotary tables
  torch::manual_seed(23);
  auto toks = torch::randint(0, 256, {2, n}, torch::kInt64);
  auto cache = m->make_cache(2, W, /*rolling=*/true);
  std::vector<torch::Tensor> inc;
  for (int64_t i = 0; i < n; ++i) inc.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &cache}).select(1, 0));
  for (int64_t pos : {int64_t{11}, int64_t{12}, int64_t{40}, n - 1}) {
    const int64_t start = std::max<int64_t>(0, pos - W + 1);
    auto fresh = m->forward(toks.narrow(1, start, pos - start + 1)).select(1, -1);
    const double diff = test::max_abs_diff(fresh, inc[pos]);
    EXPECT_LE(diff, 1e-4) << "position " << pos << ": max |dlogit| " << diff;
  }
  // an fp16 cache stays close (keys and values rounded to 11 significant bits)
  auto half = m->make_cache(2, W, true, torch::kHalf);
  std::vector<torch::Tensor> inc16;
  for (int64_t i = 0; i < n; ++i) inc16.push_back(m->forward(toks.narrow(1, i, 1), {nullptr, &half}).select(1, 0));
  const double d16 = test::max_abs_diff(torch::stack(inc16, 1), torch::stack(inc, 1));
  EXPECT_LE(d16, 2e-2) << "fp16 cache: max |dlogit| " << d16;
  EXPECT_GT(d16, 0.0);
  // chunked feeding (the general masked path) agrees with token-by-token (the fused kernel)
  auto chunked = m->make_cache(2, W, true);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += 17) parts.push_back(m->forward(toks.narrow(1, i, std::min<int64_t>(17, n - i)), {nullptr, &chunked}));
  const double diff = test::max_abs_diff(torch::cat(parts, 1), torch::stack(inc, 1));
  EXPECT_LE(diff, 1e-4) << "chunked vs token-by-token: max |dlogit| " << diff;
}

TEST(RollingCacheTest, RollingScoresEqualTokenByTokenDecoding) {
  torch::NoGradGuard g;
  auto m = rolling_model(2, 5);
  torch::manual_seed(24);
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t len : {70, 3, 1, 55}) {
    auto t = torch::randint(0, 256, {len}, torch::kInt64);
    seqs.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + len);
  }
  auto bits = score_bits_rolling(m, seqs, 16, 9);
  ASSERT_EQ(bits.size(), 4u);
  for (size_t r = 0; r < seqs.size(); ++r) {
    ASSERT_EQ(bits[r].size(), seqs[r].size() - 1);
    auto cache = m->make_cache(1, 16, true);
    for (size_t i = 0; i + 1 < seqs[r].size(); ++i) {
      auto logits = m->forward(torch::tensor({seqs[r][i]}, torch::kInt64).view({1, 1}), {nullptr, &cache});
      const double lp = torch::log_softmax(logits[0][0].to(torch::kFloat64), -1)[seqs[r][i + 1]].item<double>();
      EXPECT_NEAR(bits[r][i], -lp / std::log(2.0), 1e-4) << "row " << r << " token " << i;
    }
  }
}

TEST(RollingCacheTest, LearnedPositionsCannotRoll) {
  auto m = test::tiny_model("gpt2");
  EXPECT_THROW(m->make_cache(1, 8, true), Error);
}

}  // namespace
}  // namespace ccc::model
