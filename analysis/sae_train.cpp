// Training of sparse dictionaries (analysis/sae.h). The dense step (relu) runs on LibTorch's autograd. The
// sparse steps (topk, batchtopk) do one dense product, the encoder's pre-activations, and compute everything
// else from the selected (row, latent) pairs alone: decoding, the gradients of the decoder rows, of the
// selected encoder columns and of both biases, by hand. Per row that is O(k·d_in) instead of O(d_sae·d_in)
// for each of the five other products a dense step needs (d_sae / k = 256 at expansion 8 and k = 32).
// Every reduction runs in a fixed order (rows or latents split into contiguous ranges, each summed by one
// thread), so the same seed and batches give the same weights on any thread count.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <numeric>

#include "analysis/sae.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/kernels/parallel.h"

namespace ccc::analysis {

namespace {

// Pairs (row, latent) with the latent's pre-activation and its ReLU, grouped by row: row r owns pairs
// [row_start[r], row_start[r + 1]).
struct Pairs {
  std::vector<int64_t> row_start, col;
  std::vector<float> pre, act;
  int64_t size() const { return static_cast<int64_t>(col.size()); }
};

// The k largest entries of each row of pre [B, F].
Pairs select_topk(const torch::Tensor& pre, int64_t k) {
  auto [vals, idx] = pre.topk(k, -1);
  vals = vals.contiguous();
  idx = idx.contiguous();
  const int64_t B = pre.size(0);
  Pairs p;
  p.row_start.resize(static_cast<size_t>(B + 1));
  for (int64_t r = 0; r <= B; ++r) p.row_start[static_cast<size_t>(r)] = r * k;
  p.col.assign(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + B * k);
  p.pre.assign(vals.data_ptr<float>(), vals.data_ptr<float>() + B * k);
  p.act.resize(p.pre.size());
  for (size_t i = 0; i < p.pre.size(); ++i) p.act[i] = std::max(0.0f, p.pre[i]);
  return p;
}

// Pairs from row-major (row, latent, pre-activation) lists (contiguous int64 / int64 / float tensors).
Pairs row_major_pairs(int64_t B, const torch::Tensor& rows, const torch::Tensor& cols, const torch::Tensor& vals) {
  const int64_t P = rows.size(0);
  Pairs p;
  p.row_start.assign(static_cast<size_t>(B + 1), 0);
  const int64_t* rp = rows.data_ptr<int64_t>();
  for (int64_t i = 0; i < P; ++i) ++p.row_start[static_cast<size_t>(rp[i] + 1)];
  std::partial_sum(p.row_start.begin(), p.row_start.end(), p.row_start.begin());
  p.col.assign(cols.data_ptr<int64_t>(), cols.data_ptr<int64_t>() + P);
  p.pre.assign(vals.data_ptr<float>(), vals.data_ptr<float>() + P);
  p.act.resize(p.pre.size());
  for (size_t i = 0; i < p.pre.size(); ++i) p.act[i] = std::max(0.0f, p.pre[i]);
  return p;
}

// The n largest entries of the whole batch pre [B, F] (ties broken by position). Candidates are each row's
// top c (c = 4·n / B at first); the selection is exact when no row has all c of its candidates at or above
// the n-th largest candidate, else c doubles. `nth` receives the smallest selected value.
Pairs select_batch_topk(const torch::Tensor& pre, int64_t n, double* nth) {
  const int64_t B = pre.size(0), F = pre.size(1);
  n = std::min(n, B * F);
  for (int64_t c = std::min(F, std::max<int64_t>(1, 4 * ((n + B - 1) / B)));; c = std::min(F, 2 * c)) {
    auto [cv, ci] = pre.topk(c, -1);  // [B, c], each row descending
    auto [v, flat] = cv.reshape({-1}).topk(n);
    const float t = v[n - 1].item<float>();
    const bool exact = c == F || (cv.select(1, c - 1) < t).all().item<bool>();
    if (!exact) continue;
    auto rows = flat.div(c, "floor"), cols = ci.reshape({-1}).index_select(0, flat);
    auto order = (rows * F + cols).argsort();  // row-major, then by latent
    rows = rows.index_select(0, order).contiguous();
    cols = cols.index_select(0, order).contiguous();
    v = v.index_select(0, order).contiguous();
    *nth = t;
    return row_major_pairs(B, rows, cols, v);
  }
}

// Every positive entry of pre [B, F] (relu), row-major.
Pairs select_positive(const torch::Tensor& pre) {
  const int64_t B = pre.size(0);
  const auto nz = (pre > 0).nonzero();  // [P, 2], row-major
  const auto rows = nz.select(1, 0).contiguous(), cols = nz.select(1, 1).contiguous();
  return row_major_pairs(B, rows, cols, pre.index({rows, cols}).contiguous());
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1], s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}
inline void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// out[r] = Σ_{pairs of r} act · W[col] (+ bias when given); out [B, E] contiguous.
void decode_pairs(const Pairs& p, const torch::Tensor& W, const float* bias, torch::Tensor& out) {
  const int64_t B = out.size(0), E = out.size(1);
  const float* w = W.data_ptr<float>();
  float* o = out.data_ptr<float>();
  model::parallel_ranges(B, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* y = o + r * E;
      if (bias != nullptr) std::copy(bias, bias + E, y);
      else std::fill(y, y + E, 0.0f);
      for (int64_t i = p.row_start[static_cast<size_t>(r)]; i < p.row_start[static_cast<size_t>(r + 1)]; ++i)
        if (p.act[static_cast<size_t>(i)] != 0) axpy(p.act[static_cast<size_t>(i)], w + p.col[static_cast<size_t>(i)] * E, y, E);
    }
  });
}

// The gradients a set of pairs sends back, given d loss / d out [B, E] of out = decode_pairs(p, Wd):
// gWd[col] += act · g_out[row], and through act = relu(pre), pre = xc[row] · WeT[col] + b_enc[col]:
// gWeT[col] += g_pre · xc[row], gbenc[col] += g_pre. Pairs are regrouped by latent so that each latent's
// rows are summed by one thread in row order.
void backward_pairs(const Pairs& p, const torch::Tensor& g_out, const torch::Tensor& xc, const torch::Tensor& Wd,
                    torch::Tensor& gWd, torch::Tensor& gWeT, torch::Tensor& gbenc, float l1_grad = 0) {
  const int64_t B = g_out.size(0), E = g_out.size(1), F = Wd.size(0), P = p.size();
  std::vector<float> g_pre(static_cast<size_t>(P));
  std::vector<int64_t> row_of(static_cast<size_t>(P));
  const float* go = g_out.data_ptr<float>();
  const float* wd = Wd.data_ptr<float>();
  model::parallel_ranges(B, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = p.row_start[static_cast<size_t>(r)]; i < p.row_start[static_cast<size_t>(r + 1)]; ++i) {
        const auto u = static_cast<size_t>(i);
        row_of[u] = r;
        g_pre[u] = p.pre[u] > 0 ? dot(go + r * E, wd + p.col[u] * E, E) + l1_grad : 0.0f;
      }
  });
  // by latent: counting sort of the pair indices (stable: rows stay in order within a latent)
  std::vector<int64_t> start(static_cast<size_t>(F + 1), 0), order(static_cast<size_t>(P));
  for (int64_t c : p.col) ++start[static_cast<size_t>(c + 1)];
  std::partial_sum(start.begin(), start.end(), start.begin());
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < P; ++i) order[static_cast<size_t>(fill[static_cast<size_t>(p.col[static_cast<size_t>(i)])]++)] = i;
  }
  const float* x = xc.data_ptr<float>();
  float *gwd = gWd.data_ptr<float>(), *gwe = gWeT.data_ptr<float>(), *gbe = gbenc.data_ptr<float>();
  model::parallel_ranges(F, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t j = start[static_cast<size_t>(c)]; j < start[static_cast<size_t>(c + 1)]; ++j) {
        const auto i = static_cast<size_t>(order[static_cast<size_t>(j)]);
        const int64_t r = row_of[i];
        if (p.act[i] != 0) axpy(p.act[i], go + r * E, gwd + c * E, E);
        if (g_pre[i] != 0) {
          axpy(g_pre[i], x + r * E, gwe + c * E, E);
          gbe[c] += g_pre[i];
        }
      }
  });
}

// The parameters while training: sources flattened (E = S·d_in), the encoder stored transposed.
struct Params {
  torch::Tensor WeT, b_enc, Wd, b_dec;  // [F, E], [F], [F, E], [E]
};

// The auxiliary loss's pairs: per row, the `n` largest pre-activations among the dead latents.
Pairs select_dead(const torch::Tensor& pre, const torch::Tensor& dead, int64_t n) {
  const auto masked = pre.masked_fill(dead.logical_not().unsqueeze(0), -std::numeric_limits<float>::infinity());
  return select_topk(masked, n);
}

struct StepStats {
  double loss = 0, mse = 0, var = 0, l0 = 0, min_kept = 0;
  torch::Tensor fired;  // [F] bool
};

// One sparse step's gradients (topk / batchtopk) into g.*; returns the statistics of the batch.
// relu: the pairs are every positive pre-activation and the L1 term λ Σ f_j ‖W_dec_j‖ (unit-norm rows) adds
// λ / B to each active pair's gradient. `pre` may be given (computed by the caller).
StepStats sparse_step(const Params& w, Params& g, const torch::Tensor& X, const SaeTrainOptions& o,
                      const torch::Tensor& dead, int64_t n_dead, double lam = 0, torch::Tensor pre = {}) {
  const int64_t B = X.size(0), E = X.size(1), F = w.Wd.size(0);
  StepStats st;
  const auto xc = (X - w.b_dec).contiguous();
  if (!pre.defined()) pre = torch::addmm(w.b_enc, xc, w.WeT.t());  // [B, F], the one dense product
  const Pairs p = o.arch == SaeArch::kTopK    ? select_topk(pre, o.k)
                  : o.arch == SaeArch::kRelu ? select_positive(pre)
                                             : select_batch_topk(pre, o.k * B, &st.min_kept);
  auto xhat = torch::empty({B, E});
  decode_pairs(p, w.Wd, w.b_dec.data_ptr<float>(), xhat);
  const auto e = xhat - X;
  st.mse = e.square().sum(-1).mean().item<double>();
  st.loss = st.mse;
  if (lam > 0) {
    double l1 = 0;
    for (float a : p.act) l1 += a;
    st.loss += lam * l1 / static_cast<double>(B);
  }
  st.var = (X - X.mean(0, true)).square().sum(-1).mean().item<double>();
  int64_t nz = 0;
  auto fired = torch::zeros({F}, torch::kBool);
  bool* fp = fired.data_ptr<bool>();
  for (int64_t i = 0; i < p.size(); ++i)
    if (p.act[static_cast<size_t>(i)] > 0) ++nz, fp[p.col[static_cast<size_t>(i)]] = true;
  st.l0 = static_cast<double>(nz) / static_cast<double>(B);
  st.fired = fired;
  const auto g_out = (e * (2.0 / static_cast<double>(B))).contiguous();  // d mean‖e‖² / d x̂
  g.b_dec = g_out.sum(0);
  backward_pairs(p, g_out, xc, w.Wd, g.Wd, g.WeT, g.b_enc, static_cast<float>(lam / static_cast<double>(B)));
  if (n_dead > 0 && o.aux_coeff > 0) {  // the most active dead latents reconstruct what the live ones miss
    const Pairs a = select_dead(pre, dead, std::min<int64_t>(o.aux_k, n_dead));
    auto ehat = torch::empty({B, E});
    decode_pairs(a, w.Wd, nullptr, ehat);
    const auto res = -e;  // x − x̂, held fixed
    const double norm = std::max(1e-12, res.square().sum(-1).mean().item<double>());
    st.loss += o.aux_coeff * (ehat - res).square().sum(-1).mean().item<double>() / norm;
    const auto g_aux = ((ehat - res) * (2.0 * o.aux_coeff / (static_cast<double>(B) * norm))).contiguous();
    backward_pairs(a, g_aux, xc, w.Wd, g.Wd, g.WeT, g.b_enc);
  }
  // b_dec also enters the encoder (xc = x − b_dec): d/d b_dec −= Σ_latents g_b_enc · WeT
  g.b_dec -= torch::mv(w.WeT.t(), g.b_enc);
  return st;
}

// The dense step (relu): autograd over MSE + λ Σ f‖W_dec row‖ (+ the auxiliary loss on dead latents).
StepStats dense_step(Params& w, const torch::Tensor& X, const SaeTrainOptions& o, double lam, const torch::Tensor& dead,
                     int64_t n_dead) {
  const int64_t B = X.size(0);
  StepStats st;
  torch::AutoGradMode grad(true);
  for (auto* t : {&w.WeT, &w.b_enc, &w.Wd, &w.b_dec}) t->requires_grad_(true);
  const auto xc = X - w.b_dec;
  const auto pre = torch::addmm(w.b_enc, xc, w.WeT.t());
  const auto f = torch::relu(pre);
  const auto xhat = torch::mm(f, w.Wd) + w.b_dec;
  const auto err = (xhat - X).square().sum(-1);
  auto loss = err.mean() + lam * (f * w.Wd.square().sum(-1).sqrt()).sum(-1).mean();
  if (n_dead > 0 && o.aux_coeff > 0) {
    torch::Tensor fa;
    {
      const auto masked = pre.masked_fill(dead.logical_not().unsqueeze(0), -1e30);
      auto [v, i] = masked.topk(std::min<int64_t>(o.aux_k, n_dead), -1);
      fa = torch::zeros_like(pre).scatter(-1, i, torch::relu(v));
    }
    const auto res = (X - xhat).detach();
    const auto aux = (torch::mm(fa, w.Wd) - res).square().sum(-1).mean() / res.square().sum(-1).mean().clamp_min(1e-12);
    loss = loss + o.aux_coeff * aux;
  }
  loss.backward();
  {
    torch::NoGradGuard ng;
    st.loss = loss.item<double>();
    st.mse = err.mean().item<double>();
    st.var = (X - X.mean(0, true)).square().sum(-1).mean().item<double>();
    const auto on = f > 0;
    st.l0 = on.sum(-1).to(torch::kFloat64).mean().item<double>();
    st.fired = on.any(0);
  }
  (void)B;
  return st;
}

// The saved layout to the training one (sources flattened, encoder transposed) and back.
Params to_params(const Sae& s) {
  const int64_t S = s.sources(), D = s.d_in(), F = s.d_sae();
  return {s.W_enc.reshape({S * D, F}).t().contiguous(), s.b_enc.contiguous().clone(),
          s.W_dec.permute({1, 0, 2}).reshape({F, S * D}).contiguous(), s.b_dec.reshape({S * D}).contiguous()};
}
void from_params(const Params& w, int64_t S, Sae& s) {
  const int64_t F = w.Wd.size(0), D = w.Wd.size(1) / S;
  s.W_enc = w.WeT.detach().t().reshape({S, D, F}).contiguous();
  s.b_enc = w.b_enc.detach().clone();
  s.W_dec = w.Wd.detach().reshape({F, S, D}).permute({1, 0, 2}).contiguous();
  s.b_dec = w.b_dec.detach().reshape({S, D}).contiguous();
}

// Resampling (Bricken et al. 2023): each dead latent restarts on a row of the batch drawn with probability
// ∝ its squared reconstruction error; decoder row = that row's residual (unit norm), encoder column = the
// same direction scaled to `enc_scale` x the live latents' mean encoder norm (relu: 0.2, as Bricken et al.;
// topk: 1, or a restarted latent rarely makes a row's top k), b_enc = 0, Adam's moments of those rows reset.
void resample_dead(Params& w, torch::optim::Adam& opt, const torch::Tensor& X, const torch::Tensor& dead,
                   at::Generator& gen, double enc_scale) {
  const auto idx = dead.nonzero().squeeze(1);
  const int64_t n = idx.size(0);
  const auto xc = X - w.b_dec;
  const auto pre = torch::addmm(w.b_enc, xc, w.WeT.t());
  const auto f = torch::relu(pre);
  // the current reconstruction error per row (dense: resampling is rare)
  const auto err = (torch::mm(f, w.Wd) + w.b_dec - X);
  const auto p = err.square().sum(-1).to(torch::kFloat64);
  const auto rows = torch::multinomial(p / p.sum().clamp_min(1e-30), n, /*replacement=*/true, gen);
  auto dir = (X.index_select(0, rows) - (torch::mm(f.index_select(0, rows), w.Wd) + w.b_dec));
  dir = dir / dir.norm(2, -1, true).clamp_min(1e-12);
  const auto live = dead.logical_not();
  const double enc_norm = live.any().item<bool>() ? w.WeT.index({live}).norm(2, -1).mean().item<double>() : 1.0;
  w.Wd.index_copy_(0, idx, dir);
  w.WeT.index_copy_(0, idx, dir * (enc_scale * enc_norm));
  w.b_enc.index_fill_(0, idx, 0.0);
  for (auto* t : {&w.WeT, &w.b_enc, &w.Wd}) {
    auto it = opt.state().find(c10::guts::to_string(t->unsafeGetTensorImpl()));
    if (it == opt.state().end()) continue;
    auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
    st.exp_avg().index_fill_(0, idx, 0.0);
    st.exp_avg_sq().index_fill_(0, idx, 0.0);
  }
}

}  // namespace

SaeGradients sae_gradients(const Sae& s, const torch::Tensor& x, const SaeTrainOptions& o, const torch::Tensor& dead,
                           bool dense) {
  torch::NoGradGuard ng;
  const int64_t S = s.sources(), E = S * s.d_in();
  Params w = to_params(s);
  const auto X = x.to(torch::kFloat32).reshape({-1, E}).contiguous();
  const int64_t n_dead = dead.sum().item<int64_t>();
  StepStats st;
  Params g;
  if (o.arch != SaeArch::kRelu || !dense) {
    g = {torch::zeros_like(w.WeT), torch::zeros_like(w.b_enc), torch::zeros_like(w.Wd), torch::zeros_like(w.b_dec)};
    st = sparse_step(w, g, X, o, dead, n_dead, o.arch == SaeArch::kRelu ? o.l1 : 0.0);
  } else {
    st = dense_step(w, X, o, o.l1, dead, n_dead);
    g = {w.WeT.grad(), w.b_enc.grad(), w.Wd.grad(), w.b_dec.grad()};
  }
  Sae gs;
  from_params(g, S, gs);
  return {st.loss, gs.W_enc, gs.b_enc, gs.W_dec, gs.b_dec};
}

Sae train_sae(const SaeBatches& batches, const SaeTrainOptions& o, SaeTrainMetrics* metrics) {
  CCC_CHECK(o.d_sae >= 1 && o.steps >= 1 && o.batch >= 1, "sae train: d_sae, steps and batch must be >= 1");
  CCC_CHECK(o.arch == SaeArch::kRelu || (o.k >= 1 && o.k <= o.d_sae), "sae train: k = ", o.k, " must be in [1, d_sae = ",
            o.d_sae, "]");
  CCC_CHECK(o.aux_k >= 1, "sae train: aux_k must be >= 1");
  torch::NoGradGuard outer;
  // the fixed input scale c (E‖c x‖² = d_in per source) and b_dec's initial mean, from the first rows
  // Under mpirun, data-parallel: every rank draws its share of each batch from its own stream of rows
  // (dump_batches seeds by rank), computes its gradients, and the sums over ranks (dist::allreduce_sum:
  // every rank gets the same bits) update identical weights. The scale, the firing record and the
  // statistics are global; batch-topk's selection is per rank's rows.
  const int N = dist::in_map() ? 1 : dist::size(), R = N == 1 ? 0 : dist::rank();
  auto share = [&](int64_t rows) { return rows / N + (R < rows % N ? 1 : 0); };
  auto all_sum = [&](std::vector<double> v) {
    if (N > 1) dist::allreduce_sum(v);
    return v;
  };
  auto all_sum_tensor = [&](torch::Tensor& t) {  // contiguous float32, in place
    if (N > 1) dist::allreduce_sum(t.data_ptr<float>(), t.numel());
  };
  const auto first = batches(share(o.scale_rows)).to(torch::kFloat32);
  CCC_CHECK(first.dim() == 3, "sae train: batches must be [rows, sources, d_in], got ", first.sizes());
  const int64_t S = first.size(1), D = first.size(2), E = S * D, F = o.d_sae;
  const auto sq = all_sum({first.square().sum().item<double>(), static_cast<double>(first.size(0) * S)});
  const double c = std::sqrt(static_cast<double>(D) / (sq[0] / std::max(1.0, sq[1])));
  CCC_CHECK(std::isfinite(c) && c > 0, "sae train: the activations are all zero or not finite");
  auto gen = at::detail::createCPUGenerator(o.seed);
  Params w;
  if (o.init != nullptr) {  // continue from a dictionary (raw space) brought into the scaled space
    const Sae& s0 = *o.init;
    CCC_CHECK(s0.sources() == S && s0.d_in() == D && s0.d_sae() == F, "sae train: the initial dictionary is [", s0.sources(),
              ", ", s0.d_in(), ", ", s0.d_sae(), "], the data and options want [", S, ", ", D, ", ", F, "]");
    w = to_params(s0);
    w.WeT = (w.WeT / c).contiguous();
    w.Wd = (w.Wd * c).contiguous();
    w.b_dec = (w.b_dec * c).contiguous();
    w.Wd /= w.Wd.norm(2, -1, true).clamp_min(1e-12);
  } else {
    w.Wd = torch::randn({F, E}, gen);
    w.Wd /= w.Wd.norm(2, -1, true);
    w.WeT = w.Wd.clone();  // the encoder starts as the decoder's transpose
    w.b_enc = torch::zeros({F});
    w.b_dec = (first.reshape({-1, E}) * c).sum(0).contiguous();
    all_sum_tensor(w.b_dec);
    w.b_dec /= static_cast<double>(std::max<int64_t>(1, static_cast<int64_t>(all_sum({static_cast<double>(first.size(0))})[0])));
  }
  std::vector<torch::Tensor> params = {w.WeT, w.b_enc, w.Wd, w.b_dec};
  for (auto& t : params) t.mutable_grad() = torch::zeros_like(t);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(o.lr).betas({0.9, 0.999}));
  auto since_fired = torch::zeros({F}, torch::kInt64);
  double thr_sum = 0;
  int64_t thr_n = 0;
  double m_mse = 0, m_var = 0, m_l0 = 0;
  int64_t m_n = 0, rows = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    const auto X = (batches(share(o.batch)).to(torch::kFloat32).reshape({-1, E}) * c).contiguous();  // [B, E]
    const int64_t B = N == 1 ? X.size(0) : static_cast<int64_t>(all_sum({static_cast<double>(X.size(0))})[0]);
    dist::fault_point("sae.step");
    const auto dead = since_fired >= o.dead_rows;
    const int64_t n_dead = dead.sum().item<int64_t>();
    StepStats st;
    // relu goes sparse once at most 1/8 of its pre-activations are positive (the dense step before that)
    const double lam = o.arch != SaeArch::kRelu ? 0.0
                       : o.l1 * std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(std::max<int64_t>(1, o.l1_warmup)));
    torch::Tensor pre;
    if (o.arch == SaeArch::kRelu) pre = torch::addmm(w.b_enc, X - w.b_dec, w.WeT.t());
    const auto positive = [&] {  // over all ranks' rows: every rank takes the same branch
      return static_cast<int64_t>(all_sum({static_cast<double>((pre > 0).sum().item<int64_t>())})[0]);
    };
    if (o.arch != SaeArch::kRelu || positive() * 8 <= B * F) {
      Params g{w.WeT.mutable_grad(), w.b_enc.mutable_grad(), w.Wd.mutable_grad(), w.b_dec.mutable_grad()};
      for (auto* t : {&g.WeT, &g.b_enc, &g.Wd}) t->zero_();
      st = sparse_step(w, g, X, o, dead, n_dead, lam, pre);
      w.b_dec.mutable_grad() = g.b_dec;
    } else {
      for (auto& t : params) t.mutable_grad().zero_();
      st = dense_step(w, X, o, lam, dead, n_dead);
      for (auto* t : {&w.WeT, &w.b_enc, &w.Wd, &w.b_dec}) t->requires_grad_(false);
    }
    if (N > 1) {  // the mean over all rows: each rank's mean over its rows, summed, over N
      for (auto* t : {&w.WeT, &w.b_enc, &w.Wd, &w.b_dec}) {
        auto& gr = t->mutable_grad();
        gr = (gr * (static_cast<double>(X.size(0)) / static_cast<double>(B))).contiguous();
        all_sum_tensor(gr);
      }
      auto f = st.fired.to(torch::kFloat32).contiguous();
      all_sum_tensor(f);
      st.fired = f > 0;
      const auto v = all_sum({st.mse * X.size(0), st.var * X.size(0), st.l0 * X.size(0), st.min_kept});
      st.mse = v[0] / B, st.var = v[1] / B, st.l0 = v[2] / B, st.min_kept = v[3] / N;
    }
    // the decoder gradient's component along each (unit) row removed, step, rows renormalised
    auto& gd = w.Wd.mutable_grad();
    gd -= (gd * w.Wd).sum(-1, true) * w.Wd;
    opt.step();
    w.Wd.div_(w.Wd.norm(2, -1, true).clamp_min(1e-12));
    since_fired = torch::where(st.fired, torch::zeros_like(since_fired), since_fired + B);
    if (o.resample_every > 0 && (step + 1) % o.resample_every == 0 && step + 1 < o.steps) {
      const auto dead_now = since_fired >= o.dead_rows;
      if (dead_now.any().item<bool>()) {
        resample_dead(w, opt, X, dead_now, gen, o.arch == SaeArch::kRelu ? 0.2 : 1.0);
        if (N > 1) {  // rank 0's rows chose the new directions: its weights for everyone
          for (auto* t : {&w.WeT, &w.b_enc, &w.Wd}) {
            const std::string b = dist::broadcast(std::string_view(static_cast<const char*>(t->data_ptr()), t->numel() * sizeof(float)));
            std::memcpy(t->data_ptr(), b.data(), b.size());
          }
        }
        since_fired.masked_fill_(dead_now, 0);
      }
    }
    if (o.arch == SaeArch::kBatchTopK && st.min_kept > 0) thr_sum += st.min_kept, ++thr_n;
    rows += B;
    if (step >= o.steps - o.log_every) m_mse += st.mse, m_var += st.var, m_l0 += st.l0, ++m_n;
    if (o.progress && (step + 1) % o.log_every == 0) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      o.progress({{"step", step + 1}, {"mse", st.mse}, {"explained_variance", 1 - st.mse / st.var}, {"l0", st.l0},
                  {"dead_fraction", (since_fired >= o.dead_rows).to(torch::kFloat64).mean().item<double>()},
                  {"rows_per_second", static_cast<double>(rows) / std::max(1e-9, secs)}});
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // back to the saved layout, with the scale c folded in: the formula then holds on raw activations
  Sae out;
  out.arch = o.arch;
  out.k = o.k;
  out.threshold = thr_n > 0 ? thr_sum / static_cast<double>(thr_n) : 0.0;  // pre-activations do not depend on c
  out.W_enc = (w.WeT.detach().t().reshape({S, D, F}) * c).contiguous();
  out.b_enc = w.b_enc.detach().clone();
  out.W_dec = (w.Wd.detach().reshape({F, S, D}).permute({1, 0, 2}) / c).contiguous();
  out.b_dec = (w.b_dec.detach().reshape({S, D}) / c).contiguous();
  if (metrics != nullptr) {
    metrics->steps = o.steps;
    metrics->rows = rows;
    metrics->mse = m_n ? m_mse / m_n : 0;
    metrics->explained_variance = m_n ? 1 - m_mse / m_var : 0;
    metrics->l0 = m_n ? m_l0 / m_n : 0;
    metrics->dead_fraction = (since_fired >= o.dead_rows).to(torch::kFloat64).mean().item<double>();
    metrics->input_scale = c;
    metrics->rows_per_second = static_cast<double>(rows) / std::max(1e-9, secs);
  }
  return out;
}

}  // namespace ccc::analysis
