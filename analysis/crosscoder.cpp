#include "analysis/crosscoder.h"

#include <cmath>
#include <random>

#include "analysis/capture.h"
#include "model/base/error.h"
#include "model/core/bits.h"
#include "model/core/hooks.h"

namespace ccc::analysis {

namespace {

constexpr int64_t kWindowsPerBatch = 16;
constexpr int64_t kChunkRows = 4096;

// [BOS, window bytes] rows of the text's whole windows, [n_windows, window + 1].
torch::Tensor window_tokens(const model::LoadedModel& m, std::string_view text, int64_t window) {
  CCC_CHECK(m.tokenizer->kind() == "byte", m.source, ": the crosscoder compares byte-level models");
  CCC_CHECK(window >= 1 && window + 1 <= m.config.n_ctx, "crosscoder: a window of ", window, " bytes does not fit ", m.source,
            "'s context of ", m.config.n_ctx);
  const int64_t n = static_cast<int64_t>(text.size()) / window;
  CCC_CHECK(n >= 1, "crosscoder: the text (", text.size(), " bytes) is shorter than one window of ", window, " bytes");
  auto t = torch::empty({n, window + 1}, torch::kInt64);
  auto acc = t.accessor<int64_t, 2>();
  for (int64_t w = 0; w < n; ++w) {
    acc[w][0] = m.config.bos_id;
    for (int64_t i = 0; i < window; ++i) acc[w][1 + i] = static_cast<uint8_t>(text[static_cast<size_t>(w * window + i)]);
  }
  return t;
}

// Runs `m` over the windows (batches of kWindowsPerBatch) with `install` adding edits; returns Σ bits of
// every non-BOS token and, when `cache` is set, the hook's activations [n, window + 1, d].
double run_windows(model::LoadedModel& m, const torch::Tensor& tokens, const std::string& hook,
                   const std::function<void(model::HookSet&, int64_t first)>& install, torch::Tensor* cache) {
  torch::InferenceMode guard;
  m.model->eval();
  double bits = 0;
  std::vector<torch::Tensor> parts;
  for (int64_t w0 = 0; w0 < tokens.size(0); w0 += kWindowsPerBatch) {
    const int64_t b = std::min(kWindowsPerBatch, tokens.size(0) - w0);
    const auto t = tokens.narrow(0, w0, b);
    model::HookSet hooks;
    if (install) install(hooks, w0);
    if (cache != nullptr) hooks.cache(hook);
    const auto logits = m.model->forward(t, {&hooks});
    bits += model::token_bits(logits.narrow(1, 0, t.size(1) - 1).to(torch::kFloat64), t.narrow(1, 1, t.size(1) - 1)).sum().item<double>();
    if (cache != nullptr) parts.push_back(hooks.cached().at(hook).to(torch::kFloat32).reshape({b, t.size(1), -1}));
  }
  if (cache != nullptr) *cache = torch::cat(parts, 0);
  return bits;
}

}  // namespace

nlohmann::json CrosscoderReport::to_json() const {
  return {{"hook", hook},
          {"d_in", d_in},
          {"d_sae", d_sae},
          {"k", sae.k},
          {"train_rows", train_rows},
          {"eval_rows", eval_rows},
          {"latents", {{"shared", shared}, {"a_only", a_only}, {"b_only", b_only}, {"between", between}, {"dead", dead},
                       {"a_only_before_latent_scaling", a_only_raw}, {"b_only_before_latent_scaling", b_only_raw}}},
          {"explained_variance", {{"a", explained_variance_a}, {"b", explained_variance_b}}},
          {"bits_b", {{"clean", bits_clean_b}, {"splice", bits_splice_b}, {"eval_bytes", eval_bytes}}},
          {"delta_bits_removing", {{"shared", delta_bits_shared}, {"a_only", delta_bits_a_only}, {"b_only", delta_bits_b_only}}}};
}

torch::Tensor hook_rows(model::LoadedModel& m, std::string_view text, const std::string& hook, int64_t window) {
  resolve_hooks(m, {hook});  // names the hook when the model lacks it
  const auto tokens = window_tokens(m, text, window);
  torch::Tensor acts;
  run_windows(m, tokens, hook, {}, &acts);
  return acts.narrow(1, 1, window).reshape({-1, acts.size(2)}).contiguous();
}

CrosscoderReport diff_models(model::LoadedModel& a, model::LoadedModel& b, std::string_view train_text, std::string_view eval_text,
                             const CrosscoderOptions& o) {
  CrosscoderReport rep;
  rep.hook = o.hook.empty() ? "blocks." + std::to_string(a.config.n_layers / 2) + ".hook_resid_post" : o.hook;
  const auto xa = hook_rows(a, train_text, rep.hook, o.window), xb = hook_rows(b, train_text, rep.hook, o.window);
  CCC_CHECK(xa.sizes() == xb.sizes(), "crosscoder: ", a.source, " and ", b.source, " differ at ", rep.hook, " (", xa.sizes(), " vs ",
            xb.sizes(), ")");
  const auto X = torch::stack({xa, xb}, 1).contiguous();  // [N, 2, d]
  rep.d_in = X.size(2);
  rep.train_rows = X.size(0);
  auto rng = std::make_shared<std::mt19937_64>(o.seed ^ 0xC055C0DEULL);
  SaeBatches batches = [X, rng](int64_t rows) {
    auto idx = torch::empty({rows}, torch::kInt64);
    auto* p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < rows; ++i) p[i] = static_cast<int64_t>((*rng)() % static_cast<uint64_t>(X.size(0)));
    return X.index_select(0, idx);
  };
  SaeTrainOptions t;
  t.arch = SaeArch::kTopK;
  t.d_sae = o.expansion * rep.d_in;
  t.k = o.k;
  t.steps = o.steps;
  t.batch = o.batch;
  t.lr = o.lr;
  t.seed = o.seed;
  t.dead_rows = std::min<int64_t>(t.dead_rows, rep.train_rows);
  t.log_every = std::max<int64_t>(1, o.steps);
  rep.sae = train_sae(batches, t);
  const auto& sae = rep.sae;
  rep.d_sae = sae.d_sae();
  // the evaluation rows and windows
  const auto tokens = window_tokens(b, eval_text, o.window);
  torch::Tensor acts_a, acts_b;
  run_windows(a, tokens, rep.hook, {}, &acts_a);
  rep.bits_clean_b = run_windows(b, tokens, rep.hook, {}, &acts_b);
  rep.eval_bytes = tokens.size(0) * o.window;
  const auto E = torch::stack({acts_a.narrow(1, 1, o.window).reshape({-1, rep.d_in}), acts_b.narrow(1, 1, o.window).reshape({-1, rep.d_in})}, 1);
  rep.eval_rows = E.size(0);
  const auto norms = sae.W_dec.norm(2, 2);  // [2, d_sae]
  const auto rel = (norms[1] / (norms[0] + norms[1]).clamp_min(1e-30)).to(torch::kFloat64).contiguous();
  // own direction of every latent: the decoder of the model where it is stronger
  const auto own_b = rel.gt(0.5);
  const auto D = torch::where(own_b.unsqueeze(1), sae.W_dec[1], sae.W_dec[0]);  // [d_sae, d]
  const auto dd = (D * D).sum(1).to(torch::kFloat64);                          // ‖d_j‖²
  auto fired = torch::zeros({rep.d_sae}, torch::kBool);
  auto num = torch::zeros({2, rep.d_sae}, torch::kFloat64), den = torch::zeros({rep.d_sae}, torch::kFloat64);
  double sse[2] = {0, 0}, sst[2] = {0, 0};
  const auto mean = E.mean(0);  // [2, d]
  {
    torch::InferenceMode guard;
    for (int64_t r0 = 0; r0 < E.size(0); r0 += kChunkRows) {
      const auto x = E.narrow(0, r0, std::min(kChunkRows, E.size(0) - r0));
      const auto f = sae.encode(x);       // [n, d_sae]
      const auto xh = sae.decode(f);      // [n, 2, d]
      const auto err = x - xh;
      fired |= f.gt(0).any(0);
      for (int s = 0; s < 2; ++s) {
        sse[s] += err.select(1, s).pow(2).sum().item<double>();
        sst[s] += (x.select(1, s) - mean[s]).pow(2).sum().item<double>();
        // ⟨ε_s, d_j⟩ = ⟨x_s − x̂_s, d_j⟩ + f_j ⟨W_dec[s, j], d_j⟩
        const auto proj = torch::mm(err.select(1, s), D.t()) + f * (sae.W_dec[s] * D).sum(1).unsqueeze(0);
        num[s] += (f * proj).sum(0).to(torch::kFloat64);
      }
      den += (f * f).sum(0).to(torch::kFloat64) * dd;
    }
  }
  // undefined (NaN) for a source that does not vary
  const double tiny = 1e-12 * static_cast<double>(E.size(0) * rep.d_in);
  rep.explained_variance_a = sst[0] > tiny ? 1 - sse[0] / sst[0] : std::nan("");
  rep.explained_variance_b = sst[1] > tiny ? 1 - sse[1] / sst[1] : std::nan("");
  const auto fr = fired.contiguous();
  const bool* fp = fr.data_ptr<bool>();
  const double* rp = rel.data_ptr<double>();
  const auto numc = num.contiguous(), denc = den.contiguous();
  auto na = numc[0].contiguous(), nb = numc[1].contiguous();
  const double *pa = na.data_ptr<double>(), *pb = nb.data_ptr<double>(), *pd = denc.data_ptr<double>();
  std::vector<int64_t> g_shared, g_a, g_b;
  for (int64_t j = 0; j < rep.d_sae; ++j) {
    const double r = rp[j];
    rep.relative_norm.push_back(r);
    rep.nu.push_back(std::nan(""));
    if (!fp[j]) {
      rep.group.push_back("dead");
      ++rep.dead;
      continue;
    }
    std::string g = r < o.exclusive ? "a_only" : r > 1 - o.exclusive ? "b_only" : (r >= o.shared_low && r <= 1 - o.shared_low) ? "shared" : "between";
    if (g == "a_only" || g == "b_only") {
      (g == "a_only" ? rep.a_only_raw : rep.b_only_raw)++;
      const double own = g == "b_only" ? pb[j] : pa[j], other = g == "b_only" ? pa[j] : pb[j];
      const double nu = pd[j] > 0 && own != 0 ? other / own : std::nan("");
      rep.nu.back() = nu;
      if (std::isfinite(nu) && nu >= o.scaling_keep) g = "shared";
    }
    rep.group.push_back(g);
    if (g == "shared") ++rep.shared, g_shared.push_back(j);
    else if (g == "a_only") ++rep.a_only, g_a.push_back(j);
    else if (g == "b_only") ++rep.b_only, g_b.push_back(j);
    else ++rep.between;
  }
  // bits of model B with the crosscoder's reconstruction spliced in, then with a group of latents removed
  auto splice_bits = [&](const std::vector<int64_t>& removed) {
    auto keep = torch::ones({rep.d_sae}, torch::kFloat32);
    for (int64_t j : removed) keep[j] = 0;
    return run_windows(b, tokens, rep.hook, [&](model::HookSet& hooks, int64_t first) {
      hooks.edit(rep.hook, [&, first, keep](const torch::Tensor& x, const model::HookContext&) {
        const int64_t nb = x.size(0), p = x.size(1);
        const auto xa_w = acts_a.narrow(0, first, nb);  // the base's activations at the same windows
        const auto rows = torch::stack({xa_w.reshape({nb * p, -1}), x.to(torch::kFloat32).reshape({nb * p, -1})}, 1);
        const auto f = sae.encode(rows) * keep.unsqueeze(0);
        auto y = sae.decode(f).select(1, 1).reshape({nb, p, -1});
        y.narrow(1, 0, 1).copy_(x.narrow(1, 0, 1));  // BOS keeps its activation
        return y.to(x.dtype());
      });
    }, nullptr);
  };
  rep.bits_splice_b = splice_bits({});
  rep.delta_bits_shared = splice_bits(g_shared) - rep.bits_splice_b;
  rep.delta_bits_a_only = g_a.empty() ? 0.0 : splice_bits(g_a) - rep.bits_splice_b;
  rep.delta_bits_b_only = g_b.empty() ? 0.0 : splice_bits(g_b) - rep.bits_splice_b;
  return rep;
}

}  // namespace ccc::analysis
