#include "circuits/ablation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "circuits/attribution.h"
#include "circuits/discovery.h"
#include "circuits/patching.h"
#include "circuits/sweep.h"
#include "model/base/error.h"
#include "model/core/bits.h"
#include "model/scoring/streams.h"
#include "model/base/segments.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::circuits {
namespace {

std::string sample_text(size_t n, uint32_t seed) {
  std::string t;
  std::mt19937 rng(seed);
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat", ". ", "\n", "Dog ", "(quoted) ", "42 "};
  while (t.size() < n) t += words[rng() % 11];
  t.resize(n);
  return t;
}

// `count` random printable strings of `len` bytes, each followed by its copy (and a newline if asked).
using test::repeated_strings;

ScoringRun small_run(const std::string& mode = "zero", uint64_t seed = 0) {
  ScoringRun r;
  r.mode = parse_mode(mode);
  r.streams = 3;
  r.window = 24;
  r.seed = seed;
  return r;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Zeroing a component's activation is the same model as zeroing the weights that read it out: head h's
// columns of W_O; neuron n's column of W_out; a whole MLP's W_out and b_out; a whole attention's W_O and b_O.
TEST(Ablation, ZeroAblationEqualsTheModelWithTheComponentCutOut) {
  auto m = test::tiny_byte_lm(4, 64);
  const std::string text = sample_text(400, 1);
  const auto run = small_run();
  const auto clean = ablated_bits(m, text, run, {}, nullptr);
  const int64_t dh = m.config.d_head;
  struct Case {
    std::string spec;
    std::function<void(std::map<std::string, torch::Tensor>&)> cut;
  };
  const std::vector<Case> cases = {
      {"1.1", [&](auto& sd) { sd["blocks.1.attn.W_O"].narrow(1, 1 * dh, dh).zero_(); }},
      {"n0.5", [&](auto& sd) { sd["blocks.0.mlp.W_out"].select(1, 5).zero_(); }},
      {"mlp1", [&](auto& sd) { sd["blocks.1.mlp.W_out"].zero_(); sd["blocks.1.mlp.b_out"].zero_(); }},
      {"attn0", [&](auto& sd) { sd["blocks.0.attn.W_O"].zero_(); sd["blocks.0.attn.b_O"].zero_(); }},
      {"0.0,n1.3", [&](auto& sd) {
         sd["blocks.0.attn.W_O"].narrow(1, 0, dh).zero_();
         sd["blocks.1.mlp.W_out"].select(1, 3).zero_();
       }}};
  for (const auto& c : cases) {
    const auto comps = parse_components(c.spec, m.config);
    const auto ablated = ablated_bits(m, text, run, comps, nullptr);
    auto cut = test::tiny_byte_lm(4, 64);
    {
      torch::NoGradGuard g;
      auto sd = cut.model->state_dict();
      c.cut(sd);
    }
    const auto surgery = ablated_bits(cut, text, run, {}, nullptr);
    const double d = max_abs_diff(ablated, surgery);
    EXPECT_LT(d, 1e-4) << c.spec << ": max |bits ablated − bits of the cut model| = " << d;
    EXPECT_GT(max_abs_diff(ablated, clean), 1e-3) << c.spec << " changed nothing";
  }
}

TEST(Ablation, BatchedSweepEqualsOneRunPerComponentInEveryMode) {
  auto m = test::tiny_byte_lm(5, 64);
  const std::string text = sample_text(300, 2);
  auto set = sweep_set("heads", m.config);
  for (const auto& c : sweep_set("mlps", m.config)) set.push_back(c);
  set.push_back({Component::Kind::kNeuron, 1, 7});
  for (const std::string mode : {"zero", "mean", "resample"}) {
    const auto run = small_run(mode, 3);
    Reference ref;
    if (mode != "zero") ref = collect_reference(m, text, set, parse_mode(mode), run.streams, run.window, run.seed);
    const auto naive = sweep_bits(m, text, run, set, &ref, SweepPath::kNaive);
    // 2 components per pass (branches of different layers, or one layer's pair) and all in one pass
    for (const auto& [path, rows] : {std::pair{SweepPath::kShared, 7}, {SweepPath::kShared, 256},
                                     {SweepPath::kStacked, 7}}) {
      const auto batched = sweep_bits(m, text, run, set, &ref, path, rows);
      ASSERT_EQ(batched.size(), set.size());
      const char* name = path == SweepPath::kShared ? "shared" : "stacked";
      double worst = 0;
      for (size_t i = 0; i < set.size(); ++i) {
        double a = 0, b = 0;
        for (double x : batched[i]) a += x;
        for (double x : naive[i]) b += x;
        worst = std::max(worst, std::abs(a - b));
        EXPECT_LT(max_abs_diff(batched[i], naive[i]), 1e-5) << mode << " " << name << " " << rows << " " << set[i].name();
      }
      EXPECT_LT(worst, 1e-4) << mode << " " << name << ": max |Δbits batched − naive| per component = " << worst;
    }
  }
}

// circuits_bits (several circuits side by side in one batch, as the pair interactions use it) equals one
// ablated_bits run per circuit, in every mode with a reference.
TEST(Ablation, BatchedCircuitsEqualOneRunPerCircuit) {
  auto m = test::tiny_byte_lm(4, 64);
  const std::string text = sample_text(300, 5);
  for (const char* mode : {"zero", "mean"}) {
    const auto run = small_run(mode, 3);
    const std::vector<std::vector<Component>> cs = {parse_components("0.1,mlp1", m.config), parse_components("1.0", m.config),
                                                    parse_components("n0.3,attn1", m.config)};
    std::vector<Component> all;
    for (const auto& c : cs) all.insert(all.end(), c.begin(), c.end());
    const auto ref = collect_reference(m, text, all, run.mode, run.streams, run.window, run.seed);
    const auto batched = circuits_bits(m, text, run, cs, &ref, /*max_rows=*/7);
    ASSERT_EQ(batched.size(), cs.size());
    for (size_t i = 0; i < cs.size(); ++i)
      EXPECT_LE(max_abs_diff(batched[i], ablated_bits(m, text, run, cs[i], &ref)), 1e-5) << mode << " circuit " << i;
  }
}

TEST(Ablation, RowsWithoutAnEditAreBitIdenticalToTheCleanRun) {
  auto m = test::tiny_byte_lm(6, 64);
  const std::string text = sample_text(200, 3);
  const auto run = small_run();
  model::StreamOptions opt;
  opt.streams = run.streams;
  opt.window = run.window;
  const auto clean1 = model::segmented_token_bits(m, text, opt);
  const auto clean = model::segmented_token_bits(m, text, opt, 3);  // the same batch shape, no hooks
  model::HookSet hooks;
  // copy 0 ablates head 0.1, copy 1 nothing, copy 2 mlp0
  install_ablation(hooks, m.config, {{{Component::Kind::kHead, 0, 1}}, {}, {{Component::Kind::kMlp, 0, -1}}}, 3,
                   Mode::kZero, nullptr, 0);
  opt.hooks = [&](int64_t) { return &hooks; };
  const auto rows = model::segmented_token_bits(m, text, opt, 3);
  ASSERT_EQ(rows.size(), 9u);
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(rows[3 + s], clean[3 + s]) << "stream " << s << ": max diff " << max_abs_diff(rows[3 + s], clean[3 + s]);
    // against a batch of one copy only the GEMM blocking differs
    EXPECT_LT(max_abs_diff(rows[3 + s], clean1[s]), 1e-5) << "stream " << s;
    EXPECT_GT(max_abs_diff(rows[s], clean[s]), 1e-3);
    EXPECT_GT(max_abs_diff(rows[6 + s], clean[s]), 1e-3);
  }
}

TEST(Ablation, ResampleAndMeanAreReproducibleBySeed) {
  auto m = test::tiny_byte_lm(7, 64);
  const std::string text = sample_text(300, 4);
  const auto comps = parse_components("0.1,n1.2", m.config);
  auto bits = [&](const std::string& mode, uint64_t seed) {
    const auto run = small_run(mode, seed);
    const auto ref = collect_reference(m, text, comps, parse_mode(mode), run.streams, run.window, seed);
    return ablated_bits(m, text, run, comps, &ref);
  };
  EXPECT_EQ(bits("resample", 1), bits("resample", 1));
  EXPECT_GT(max_abs_diff(bits("resample", 1), bits("resample", 2)), 1e-3);
  EXPECT_EQ(bits("mean", 1), bits("mean", 2));  // the mean does not depend on the seed
}

TEST(Ablation, BadSpecsNameTheItem) {
  auto m = test::tiny_byte_lm(1, 32);  // 2 layers, 2 heads, d_mlp 32
  auto message = [&](const std::string& spec) {  // the error's text, or "accepted"
    try {
      parse_components(spec, m.config);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("5.0").find("'5.0': layer 5 out of range"), std::string::npos) << message("5.0");
  EXPECT_NE(message("1.2").find("'1.2': head 2 out of range"), std::string::npos) << message("1.2");
  EXPECT_NE(message("n0.32").find("'n0.32': neuron 32 out of range"), std::string::npos) << message("n0.32");
  EXPECT_NE(message("foo1").find("'foo1': unknown form"), std::string::npos) << message("foo1");
  EXPECT_NE(message("1.0,1.0").find("given twice"), std::string::npos) << message("1.0,1.0");
  EXPECT_NE(message("1.0,,mlp0").find("empty item"), std::string::npos);
  EXPECT_NE(message("attn2").find("layer 2 out of range"), std::string::npos);
  EXPECT_EQ(message("0.1, attn1 ,mlp0,n1.31"), "accepted");
  auto attn_only = m;
  attn_only.config.attn_only = true;
  EXPECT_THROW(parse_components("mlp0", attn_only.config), Error);
  EXPECT_THROW(parse_mode("half"), Error);
  EXPECT_THROW(sweep_set("neurons:9", m.config), Error);
  EXPECT_EQ(sweep_set("neurons:1", m.config).size(), 32u);
}

// A position mask counts exactly the tokens it names: masked Δbits equal the sum of the per-token Δbits
// at the selected bytes (a byte model: coded token k of stream s is byte segment_start(s) + k), its bytes
// are theirs, and the model still reads the whole context (the selected tokens' bits are unchanged).
TEST(Ablation, MaskedDeltaBitsAreTheSumOverTheMaskedTokens) {
  auto m = test::tiny_byte_lm(4, 64);
  const std::string text = sample_text(500, 3);
  const auto run = small_run();  // 3 streams
  std::vector<uint8_t> bytes(text.size(), 0);
  for (size_t i = 0; i < text.size(); ++i) bytes[i] = text[i] == 'a' || text[i] == '\n';
  const auto mask = token_mask(m, text, run, bytes);
  const auto clean = ablated_bits(m, text, run, {}, nullptr);
  const auto abl = ablated_bits(m, text, run, parse_components("0.1,mlp1", m.config), nullptr);
  ASSERT_EQ(mask.on.size(), clean.size());
  double want = 0, clean_sum = 0;
  int64_t count = 0;
  size_t k = 0;
  for (uint64_t s = 0; s < 3; ++s) {
    const auto [a, b] = segment_range(text.size(), 3, s);
    for (uint64_t i = a; i < b; ++i, ++k) {
      EXPECT_EQ(mask.on[k], bytes[i]) << "token " << k << " byte " << i;
      if (!bytes[i]) continue;
      want += abl[k] - clean[k];
      clean_sum += clean[k];
      ++count;
    }
  }
  EXPECT_EQ(mask.positions, count);
  EXPECT_EQ(mask.bytes, count);  // one byte per token
  const auto d = delta_stats(masked(clean, mask), masked(abl, mask), mask.bytes, 500, 1);
  EXPECT_NEAR(d.delta_bits, want, 1e-9 * std::max(1.0, std::abs(want)));
  EXPECT_NEAR(d.clean_total_bits, clean_sum, 1e-9 * clean_sum);
  EXPECT_NEAR(d.delta_bits_per_byte, want / static_cast<double>(count), 1e-12);
  EXPECT_LE(d.ci_low, d.delta_bits_per_byte);
  EXPECT_GE(d.ci_high, d.delta_bits_per_byte);
  test::expect_error([&] { (void)masked(std::vector<double>(3, 0.0), mask); }, {"position mask"});
}

TEST(Ablation, DeltaStatsAndTheirBootstrapInterval) {
  std::vector<double> clean(1000), abl(1000);
  std::mt19937 rng(1);
  std::normal_distribution<double> n(0, 1);
  for (size_t i = 0; i < clean.size(); ++i) {
    clean[i] = 2 + n(rng);
    abl[i] = clean[i] + 0.5;
  }
  auto d = delta_stats(clean, abl, 2000, 500, 0);
  EXPECT_NEAR(d.delta_bits, 500.0, 1e-6);
  EXPECT_NEAR(d.delta_bits_per_byte, 0.25, 1e-9);
  EXPECT_NEAR(d.ci_low, 0.25, 1e-9);  // a constant Δ per token has no spread
  EXPECT_NEAR(d.ci_high, 0.25, 1e-9);
  for (size_t i = 0; i < abl.size(); ++i) abl[i] = clean[i] + 0.5 + n(rng);
  d = delta_stats(clean, abl, 1000, 2000, 0);
  EXPECT_LT(d.ci_low, d.delta_bits_per_byte);
  EXPECT_GT(d.ci_high, d.delta_bits_per_byte);
  EXPECT_NEAR(d.ci_high - d.ci_low, 2 * 1.96 / std::sqrt(1000.0), 0.06);  // ≈ the normal interval
}

// The shipped induction organism: resample-ablating its induction heads (1.2, 1.3; reference: random text
// without repeats) destroys the copy of a repeated random string and leaves the first copy alone.
TEST(Ablation, InductionHeadsOfTheShippedOrganismCarryTheSecondCopy) {
  const std::string dir = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2";
  auto m = model::load_model(dir);
  std::mt19937 rng(1);
  std::string rep, norep;
  for (int i = 0; i < 30; ++i) {
    std::string r;
    for (int k = 0; k < 50; ++k) r += static_cast<char>(32 + rng() % 95);
    rep += r + r + "\n";
  }
  for (int i = 0; i < 3000; ++i) norep += static_cast<char>(i % 101 == 100 ? '\n' : 32 + rng() % 95);
  ScoringRun run;
  run.mode = Mode::kResample;
  run.streams = 1;  // token i of the flattened bits is byte i
  run.seed = 1;
  const auto comps = parse_components("1.2,1.3", m.config);
  const auto ref = collect_reference(m, norep, comps, Mode::kResample, 1, 0, run.seed);
  const auto clean = ablated_bits(m, rep, run, {}, nullptr);
  const auto abl = ablated_bits(m, rep, run, comps, &ref);
  ASSERT_EQ(clean.size(), rep.size());
  double first = 0, second = 0;
  int nf = 0, ns = 0;
  for (size_t i = 0; i < clean.size(); ++i) {
    const size_t k = i % 101;
    if (k < 50) first += abl[i] - clean[i], ++nf;
    else if (k < 100) second += abl[i] - clean[i], ++ns;
  }
  first /= nf;
  second /= ns;
  EXPECT_GE(second, 2.0) << "second copy Δ " << second << " bits/byte";
  EXPECT_LE(std::abs(first), 0.3) << "first copy Δ " << first << " bits/byte";
}

// K-composition in the shipped organism: its previous-token head 0.2 barely reaches the logits directly,
// but through the induction head 1.2 it carries the copy.
TEST(PathPatching, ThePreviousTokenHeadWorksThroughTheInductionHead) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const std::string rep = repeated_strings(20, 50, 2);
  model::StreamOptions opt;
  opt.streams = 1;
  auto delta = [&](const std::string& snd, const std::string& rcv) {
    std::optional<Component> r;
    if (rcv != "logits") r = parse_components(rcv, m.config)[0];
    const auto b = path_patch_bits(m, rep, opt, parse_components(snd, m.config)[0], r, Mode::kZero, nullptr, 0);
    double d = 0;
    for (size_t i = 0; i < b.clean.size(); ++i) d += b.patched[i] - b.clean[i];
    return d / static_cast<double>(rep.size());
  };
  const double direct = delta("0.2", "logits"), via = delta("0.2", "1.2");
  EXPECT_LT(std::abs(direct), 0.1) << direct;
  EXPECT_GT(via, 1.0) << via;
}

}  // namespace
}  // namespace ccc::circuits


namespace ccc::circuits {
namespace {

}  // namespace
}  // namespace ccc::circuits

namespace ccc::circuits {
namespace {

// Discovery on repeated random strings keeps the organism's induction heads and its strongest
// previous-token head, and the circuit alone stays within τ per removal of the clean bits.
TEST(Ablation, DiscoverFindsThePreviousTokenAndInductionHeads) {
  const std::string text = repeated_strings(16, 50, 4, true);
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const double n = static_cast<double>(text.size());
  const ScoringRun run;  // zero ablation, the compressor's policy
  DiscoverOptions opt;
  opt.threshold = 0.05;
  opt.edges = true;
  int64_t steps_seen = 0;
  DiscoverCallbacks cb;
  cb.on_step = [&](const DiscoveryStep&) { ++steps_seen; };
  const auto d = discover(m, text, run, nullptr, opt, cb);
  std::vector<std::string> comps;
  for (const auto& c : d.circuit) comps.push_back(c.name());
  for (const char* want : {"0.2", "1.2", "1.3"})
    EXPECT_NE(std::find(comps.begin(), comps.end(), want), comps.end()) << want << " missing";
  EXPECT_LT(comps.size(), 8u);
  EXPECT_EQ(d.candidates.size(), 8u);
  EXPECT_EQ(d.circuit.size() + d.removed.size(), d.candidates.size());
  EXPECT_EQ(steps_seen, 8);
  // edges among the circuit's heads and to the logits, each the path-patching cost of that one path:
  // K-composition 0.2 -> 1.2 and the induction heads' direct effects are kept, 0.2's direct effect is not
  std::map<std::string, double> edge;
  for (const auto& e : d.edges) {
    const std::string s = e.sender.name(), r = e.receiver ? e.receiver->name() : "logits";
    EXPECT_NE(std::find(comps.begin(), comps.end(), s), comps.end()) << s;
    EXPECT_TRUE(r == "logits" || std::find(comps.begin(), comps.end(), r) != comps.end()) << r;
    EXPECT_EQ(e.kept, e.delta_bits_per_byte >= 0.05) << s << ">" << r;
    edge[s + ">" + r] = e.delta_bits_per_byte;
  }
  ASSERT_TRUE(edge.count("0.2>1.2") && edge.count("1.2>logits") && edge.count("0.2>logits"));
  EXPECT_GT(edge["0.2>1.2"], 1.0);
  EXPECT_GT(edge["1.2>logits"], 1.0);
  EXPECT_LT(edge["0.2>logits"], 0.05);
  EXPECT_FALSE(edge.count("1.2>0.2"));
  {
    const auto b = path_patch_bits(m, text, run.stream_options(), parse_components("0.2", m.config)[0],
                                   parse_components("1.2", m.config)[0], Mode::kZero, nullptr, 0);
    EXPECT_NEAR(edge["0.2>1.2"], (total_bits(b.patched) - total_bits(b.clean)) / n, 1e-9);
  }
  const double clean = d.clean_total_bits / n, circuit = d.circuit_total_bits / n, all = d.ablated_all_total_bits / n;
  EXPECT_LE(circuit - clean, 0.05 * (8 - comps.size()) + 1e-9);
  EXPECT_GT(all - clean, 2.0);
  EXPECT_GT(d.faithfulness(), 0.9);
  EXPECT_NEAR(d.faithfulness(), (all - circuit) / (all - clean), 1e-12);

  // one-shot attribution pruning: every head estimated under tau goes, the rest stays; the circuit is scored
  opt.method = DiscoverMethod::kAttribution;
  opt.threshold = 0.5;
  opt.edges = false;
  const auto a = discover(m, text, run, nullptr, opt);
  ASSERT_EQ(a.steps.size(), 8u);
  for (const auto& s : a.steps) {
    EXPECT_TRUE(s.estimated);
    EXPECT_EQ(s.removed, s.delta_bits_per_byte < 0.5) << s.component.name();
  }
  EXPECT_TRUE(a.edges.empty());
  EXPECT_GT(a.faithfulness(), 0.9);
  EXPECT_NEAR(a.clean_total_bits / n, clean, 1e-9);
  // its circuit is scored exactly: the same as ablating everything outside it
  EXPECT_NEAR(a.circuit_total_bits, total_bits(ablated_bits(m, text, run, a.removed, nullptr)), 1e-6);
  // attribution cannot expand around a resample ablation
  ScoringRun resample;
  resample.mode = Mode::kResample;
  test::expect_error([&] { discover(m, text, resample, nullptr, opt); }, {"--method attribution", "zero or mean"});
}

}  // namespace
}  // namespace ccc::circuits

namespace ccc::circuits {
namespace {

// Attribution patching is the first-order term of the exact Δbits: moving a component's activation a
// fraction ε of the way to its replacement changes the bits by ε × the estimate as ε → 0 (one stream that
// fits the window, so both use the same context).
// Path patching against hand-built references on one window (no rolling eviction: the scorer is one
// forward), computed by editing the residual stream instead of freezing components.
TEST(PathPatching, MatchesHandBuiltDirectAndHeadToHeadPaths) {
  auto m = test::tiny_byte_lm(11, 64);
  ASSERT_EQ(m.config.n_layers, 2);
  const std::string text = sample_text(50, 8);
  model::StreamOptions opt;
  opt.streams = 1;
  opt.window = 64;
  std::vector<int64_t> ids = {m.config.bos_id};
  for (unsigned char c : text) ids.push_back(c);
  const auto in = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1)).unsqueeze(0);
  const auto tgt = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end())).unsqueeze(0);
  torch::NoGradGuard ng;
  auto bits_of = [&](model::HookSet* hooks) {
    auto b = model::token_bits(m.model->forward(in, {hooks}).to(torch::kFloat64), tgt).squeeze(0).contiguous();
    return std::vector<double>(b.data_ptr<double>(), b.data_ptr<double>() + b.numel());
  };
  const int64_t dh = m.config.d_head;
  // clean z of every layer
  model::HookSet rec;
  rec.cache("blocks.*.attn.hook_z");
  bits_of(&rec);
  const auto z0 = rec.cached().at("blocks.0.attn.hook_z").clone();
  const auto W_O0 = m.model->state_dict().at("blocks.0.attn.W_O");
  // head 0.1's contribution to the residual stream: z[..., 1, :] W_O[:, dh..2dh]^T
  const auto contrib = torch::matmul(z0.select(2, 1), W_O0.narrow(1, dh, dh).t());
  const Component h01{Component::Kind::kHead, 0, 1};
  {  // 0.1 -> logits: the final residual stream minus its contribution
    const auto got = path_patch_bits(m, text, opt, h01, std::nullopt, Mode::kZero, nullptr, 0);
    model::HookSet e;
    e.edit("blocks.1.hook_resid_post", [&](const torch::Tensor& x, const model::HookContext&) { return x - contrib; });
    const auto want = bits_of(&e);
    EXPECT_LT(max_abs_diff(got.patched, want), 1e-4);
    EXPECT_LT(max_abs_diff(got.clean, bits_of(nullptr)), 1e-4);
    EXPECT_GT(max_abs_diff(got.patched, got.clean), 1e-3);
  }
  {  // 0.1 -> 1.0: head 1.0 recomputed on the residual stream minus the contribution, patched into a clean run
    const auto got = path_patch_bits(m, text, opt, h01, Component{Component::Kind::kHead, 1, 0}, Mode::kZero, nullptr, 0);
    model::HookSet a;
    a.edit("blocks.1.hook_resid_pre", [&](const torch::Tensor& x, const model::HookContext&) { return x - contrib; });
    a.cache("blocks.1.attn.hook_z");
    bits_of(&a);
    const auto z1 = a.cached().at("blocks.1.attn.hook_z").clone();
    model::HookSet b;
    b.edit("blocks.1.attn.hook_z", [&](const torch::Tensor& x, const model::HookContext&) {
      auto y = x.clone();
      y.select(2, 0).copy_(z1.select(2, 0));
      return y;
    });
    const auto want = bits_of(&b);
    EXPECT_LT(max_abs_diff(got.patched, want), 1e-4);
    EXPECT_GT(max_abs_diff(got.patched, got.clean), 1e-3);
  }
  {  // the last MLP has nothing downstream: its path to the logits is its whole ablation
    const Component mlp1{Component::Kind::kMlp, 1, -1};
    const auto got = path_patch_bits(m, text, opt, mlp1, std::nullopt, Mode::kZero, nullptr, 0);
    ScoringRun run;
    run.streams = 1;
    run.window = 64;
    EXPECT_LT(max_abs_diff(got.patched, ablated_bits(m, text, run, {mlp1}, nullptr)), 1e-4);
  }
  {  // a receiver that is not downstream, a neuron receiver, the sender itself
    const std::vector<std::pair<std::string, std::string>> bad = {{"1.0", "0.1"}, {"0.1", "0.0"}, {"mlp0", "0.1"},
                                                                  {"0.1", "n1.3"}, {"1.1", "1.1"}, {"mlp0", "mlp0"}};
    for (const auto& [snd, rcv] : bad) {
      test::expect_error([&] { check_path(parse_components(snd, m.config)[0], parse_components(rcv, m.config)[0], m.config); }, {"'" + rcv + "'"});
    }
    EXPECT_NO_THROW(check_path(h01, Component{Component::Kind::kMlp, 0, -1}, m.config));  // head -> its layer's MLP
  }
}

TEST(Ablation, AttributionIsTheDerivativeOfTheExactDelta) {
  auto m = test::tiny_byte_lm(9, 64);
  const std::string text = sample_text(40, 6);
  ScoringRun run;
  run.streams = 1;
  run.window = 64;
  model::StreamOptions opt;
  opt.streams = 1;
  opt.window = 64;
  const auto streams = model::stream_tokens(m, text, opt);
  std::vector<Component> set = sweep_set("heads", m.config);
  set.push_back({Component::Kind::kMlp, 1, -1});
  set.push_back({Component::Kind::kNeuron, 0, 3});
  const auto ref = collect_reference(m, text, set, Mode::kMean, 1, 64, 0);
  for (const Mode mode : {Mode::kZero, Mode::kMean}) {
    const auto est = attribute(m, streams, 64, set, mode, &ref).estimate(1);
    const auto clean = ablated_bits(m, text, run, {}, nullptr);
    double c0 = 0;
    for (double b : clean) c0 += b;
    for (size_t i = 0; i < set.size(); ++i) {
      const double eps = 1e-3;
      const Component comp = set[i];
      model::HookSet hs;
      hs.edit(comp.hook(), [&](const torch::Tensor& x, const model::HookContext&) {
        auto r = mode == Mode::kZero ? torch::zeros_like(x) : ref.mean.at(comp.hook()).expand_as(x);
        auto moved = x + eps * (r - x);
        auto y = x.clone();
        if (comp.index >= 0) y.select(2, comp.index).copy_(moved.select(2, comp.index));
        else y.copy_(moved);
        return y;
      });
      opt.hooks = [&](int64_t) { return &hs; };
      double c1 = 0;
      for (const auto& s : model::segmented_token_bits(m, text, opt))
        for (double b : s) c1 += b;
      opt.hooks = nullptr;
      const double fd = (c1 - c0) / eps;
      EXPECT_NEAR(est[i], fd, 0.02 * std::abs(fd) + 0.02) << comp.name() << " " << to_string(mode);
    }
  }
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
}

// Both terms from finite differences, position by position: moving the component's activation at one
// position s a fraction ε towards its replacement changes the bits by ε·(g_s·δ_s) (central difference on
// the plain forward); the linear term is their sum and the curvature term (ln 2 / 2) × their squares' sum.
TEST(Ablation, AttributionTermsAreSumsOfPerPositionDerivatives) {
  auto m = test::tiny_byte_lm(12, 64);
  const std::string text = sample_text(30, 7);
  model::StreamOptions opt;
  opt.streams = 1;
  opt.window = 64;
  const auto streams = model::stream_tokens(m, text, opt);
  ASSERT_EQ(streams.size(), 1u);
  const auto& ids = streams[0];
  const auto in = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1)).unsqueeze(0);
  const auto tgt = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end())).unsqueeze(0);
  std::vector<Component> set = {{Component::Kind::kHead, 0, 1}, {Component::Kind::kHead, 1, 0},
                                {Component::Kind::kMlp, 0, -1}, {Component::Kind::kNeuron, 1, 5},
                                {Component::Kind::kAttn, 1, -1}};
  const auto ref = collect_reference(m, text, set, Mode::kMean, 1, 64, 0);
  torch::NoGradGuard ng;
  for (const Mode mode : {Mode::kZero, Mode::kMean}) {
    const auto terms = attribute(m, streams, 64, set, mode, &ref);
    for (size_t i = 0; i < set.size(); ++i) {
      const Component c = set[i];
      const int64_t P = in.size(1);
      double lin = 0, sq = 0;
      for (int64_t s = 0; s < P; ++s) {
        auto bits_moved = [&](double eps) {
          model::HookSet hs;
          hs.edit(c.hook(), [&](const torch::Tensor& x, const model::HookContext&) {
            auto r = mode == Mode::kZero ? torch::zeros_like(x) : ref.mean.at(c.hook()).expand_as(x);
            auto moved = x + eps * (r - x);
            auto y = x.clone();
            auto ys = y.narrow(1, s, 1), ms = moved.narrow(1, s, 1);
            if (c.index >= 0) ys.select(2, c.index).copy_(ms.select(2, c.index));
            else ys.copy_(ms);
            return y;
          });
          return model::token_bits(m.model->forward(in, {&hs}).to(torch::kFloat64), tgt).sum().item<double>();
        };
        const double eps = 1e-2, d = (bits_moved(eps) - bits_moved(-eps)) / (2 * eps);  // fp32: not smaller
        lin += d;
        sq += d * d;
      }
      const double curv = 0.5 * std::log(2.0) * sq;
      EXPECT_NEAR(terms.linear[i], lin, 1e-3 * std::abs(lin) + 1e-3) << c.name() << " " << to_string(mode);
      EXPECT_NEAR(terms.curvature[i], curv, 1e-3 * curv + 1e-4) << c.name() << " " << to_string(mode);
      EXPECT_GT(terms.curvature[i], 0.0) << c.name();
      const auto e1 = terms.estimate(1), e2 = terms.estimate(2);
      EXPECT_DOUBLE_EQ(e1[i], terms.linear[i]);
      EXPECT_DOUBLE_EQ(e2[i], terms.linear[i] + terms.curvature[i]);
    }
  }
  EXPECT_THROW(attribute(m, streams, 64, set, Mode::kZero, nullptr).estimate(3), Error);
}

// With a position mask the linear term is the derivative of the masked targets' bits alone: moving the
// component toward its replacement at every position at once (one central difference), and the terms of
// a mask and of its complement add up to the unmasked ones.
TEST(Ablation, MaskedAttributionDifferentiatesTheMaskedBitsOnly) {
  auto m = test::tiny_byte_lm(12, 64);
  const std::string text = sample_text(40, 9);
  ScoringRun run;
  run.streams = 1;
  run.window = 64;
  const auto streams = model::stream_tokens(m, text, run.stream_options());
  const auto& ids = streams[0];
  const auto in = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1)).unsqueeze(0);
  const auto tgt = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end())).unsqueeze(0);
  std::vector<uint8_t> bytes(text.size(), 0), rest(text.size(), 0);
  for (size_t i = 0; i < text.size(); ++i) (text[i] == ' ' || text[i] == 'a' ? bytes : rest)[i] = 1;
  const auto mask = token_mask(m, text, run, bytes), other = token_mask(m, text, run, rest);
  ASSERT_GT(mask.positions, 3);
  const std::vector<Component> set = {{Component::Kind::kHead, 0, 1}, {Component::Kind::kMlp, 1, -1}};
  torch::NoGradGuard ng;
  const auto all = attribute(m, streams, 64, set, Mode::kZero, nullptr);
  const auto on = attribute(m, streams, 64, set, Mode::kZero, nullptr, &mask);
  const auto off = attribute(m, streams, 64, set, Mode::kZero, nullptr, &other);
  torch::Tensor w = torch::tensor(std::vector<double>(mask.on.begin(), mask.on.end()), torch::kFloat64).unsqueeze(0);
  for (size_t i = 0; i < set.size(); ++i) {
    const Component c = set[i];
    auto masked_bits_moved = [&](double eps) {
      model::HookSet hs;
      hs.edit(c.hook(), [&](const torch::Tensor& x, const model::HookContext&) {
        auto y = x.clone();
        auto part = c.index >= 0 ? y.select(2, c.index) : y;
        part.mul_(1.0 - eps);  // toward zero at every position
        return y;
      });
      return (model::token_bits(m.model->forward(in, {&hs}).to(torch::kFloat64), tgt) * w).sum().item<double>();
    };
    const double eps = 1e-2, d = (masked_bits_moved(eps) - masked_bits_moved(-eps)) / (2 * eps);
    EXPECT_NEAR(on.linear[i], d, 2e-3 * std::abs(d) + 2e-3) << c.name();
    EXPECT_NEAR(on.linear[i] + off.linear[i], all.linear[i], 1e-6 * std::abs(all.linear[i]) + 1e-6) << c.name();
  }
}

// On the shipped induction organism over repeated random strings the second-order estimate ranks the
// heads as the exact zero-ablation sweep does (measured ρ 0.929; the first order alone: 0.071).
TEST(Ablation, SecondOrderAttributionRanksTheOrganismsHeads) {
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2");
  const std::string text = repeated_strings(30, 50, 3, true);
  ScoringRun run;  // the compressor's policy
  model::StreamOptions opt;
  const int64_t W = model::resolve_window_policy(m.config, opt).first;
  const auto set = sweep_set("heads", m.config);
  const auto terms = attribute(m, model::stream_tokens(m, text, opt), W, set, Mode::kZero, nullptr);
  double clean = 0;
  for (double b : ablated_bits(m, text, run, {}, nullptr)) clean += b;
  std::vector<double> exact;
  for (const auto& bits : sweep_bits(m, text, run, set, nullptr)) {
    double t = 0;
    for (double b : bits) t += b;
    exact.push_back(t - clean);
  }
  const double rho = spearman(terms.estimate(2), exact);
  EXPECT_GE(rho, 0.8) << "second-order rho " << rho << ", first-order " << spearman(terms.estimate(1), exact);
}

}  // namespace
}  // namespace ccc::circuits
