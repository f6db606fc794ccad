#include "analysis/sae.h"

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "analysis/activation_store.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/safetensors.h"

namespace fs = std::filesystem;

namespace ccc::analysis {

SaeArch parse_sae_arch(const std::string& s) {
  if (s == "relu") return SaeArch::kRelu;
  if (s == "topk") return SaeArch::kTopK;
  if (s == "batchtopk") return SaeArch::kBatchTopK;
  CCC_FAIL("--arch ", s, ": expected relu, topk or batchtopk");
}

std::string to_string(SaeArch a) {
  switch (a) {
    case SaeArch::kRelu: return "relu";
    case SaeArch::kTopK: return "topk";
    case SaeArch::kBatchTopK: break;
  }
  return "batchtopk";
}

namespace {

// The k largest entries of each row kept (ReLUed), the rest 0.
torch::Tensor topk_rows(const torch::Tensor& pre, int64_t k) {
  auto [vals, idx] = pre.topk(k, -1);
  return torch::zeros_like(pre).scatter(-1, idx, torch::relu(vals));
}

// The k·rows largest entries of the whole batch kept (ReLUed); `min_kept` receives the smallest kept value.
torch::Tensor topk_batch(const torch::Tensor& pre, int64_t k, double* min_kept) {
  const auto flat = pre.reshape({-1});
  auto [vals, idx] = flat.topk(std::min<int64_t>(k * pre.size(0), flat.numel()));
  auto kept = torch::relu(vals);
  if (min_kept != nullptr) {
    auto pos = kept.masked_select(kept > 0);
    *min_kept = pos.numel() > 0 ? pos.min().item<double>() : 0.0;
  }
  return torch::zeros_like(flat).scatter(0, idx, kept).view(pre.sizes());
}

torch::Tensor act(const Sae& s, const torch::Tensor& pre, bool training, double* min_kept = nullptr) {
  switch (s.arch) {
    case SaeArch::kRelu: return torch::relu(pre);
    case SaeArch::kTopK: return topk_rows(pre, s.k);
    case SaeArch::kBatchTopK: break;
  }
  if (training) return topk_batch(pre, s.k, min_kept);
  return pre * (pre > s.threshold).to(pre.dtype());
}

}  // namespace

torch::Tensor Sae::pre(const torch::Tensor& x) const {
  CCC_CHECK(x.dim() == 3 && x.size(1) == sources() && x.size(2) == d_in(), "sae: input ", x.sizes(), ", expected [rows, ",
            sources(), ", ", d_in(), "]");
  return torch::einsum("bsi,sif->bf", {x - b_dec.unsqueeze(0), W_enc}) + b_enc;
}

torch::Tensor Sae::encode(const torch::Tensor& x) const { return act(*this, pre(x), false); }

torch::Tensor Sae::decode(const torch::Tensor& f) const {
  return torch::einsum("bf,sfi->bsi", {f, W_dec}) + b_dec.unsqueeze(0);
}

nlohmann::json SaeTrainMetrics::to_json() const {
  return {{"mse", mse}, {"explained_variance", explained_variance}, {"l0", l0}, {"dead_fraction", dead_fraction},
          {"input_scale", input_scale}, {"rows_per_second", rows_per_second}, {"steps", steps}, {"rows", rows}};
}

Sae train_sae(const SaeBatches& batches, const SaeTrainOptions& o, SaeTrainMetrics* metrics) {
  CCC_CHECK(o.d_sae >= 1 && o.steps >= 1 && o.batch >= 1, "sae train: d_sae, steps and batch must be >= 1");
  CCC_CHECK(o.arch == SaeArch::kRelu || (o.k >= 1 && o.k <= o.d_sae), "sae train: k = ", o.k, " must be in [1, d_sae = ",
            o.d_sae, "]");
  torch::NoGradGuard outer;
  // the fixed input scale c (E‖c x‖² = d_in per source) and b_dec's initial mean, from the first rows
  const auto first = batches(o.scale_rows).to(torch::kFloat32);
  CCC_CHECK(first.dim() == 3, "sae train: batches must be [rows, sources, d_in], got ", first.sizes());
  const int64_t S = first.size(1), D = first.size(2), F = o.d_sae;
  const double c = std::sqrt(static_cast<double>(D) / first.square().sum(-1).mean().item<double>());
  CCC_CHECK(std::isfinite(c) && c > 0, "sae train: the activations are all zero or not finite");
  torch::manual_seed(o.seed);
  auto gen = at::detail::createCPUGenerator(o.seed);
  Sae s;
  s.arch = o.arch;
  s.k = o.k;
  auto W_dec = torch::randn({S, F, D}, gen);
  W_dec /= W_dec.square().sum(torch::IntArrayRef{0, 2}, true).sqrt();
  s.W_dec = W_dec.set_requires_grad(true);
  s.W_enc = W_dec.permute({0, 2, 1}).clone().set_requires_grad(true);
  s.b_enc = torch::zeros({F}).set_requires_grad(true);
  s.b_dec = (first * c).mean(0).clone().set_requires_grad(true);
  torch::optim::Adam opt({s.W_enc, s.b_enc, s.W_dec, s.b_dec}, torch::optim::AdamOptions(o.lr).betas({0.9, 0.999}));
  auto since_fired = torch::zeros({F}, torch::kInt64);
  double thr_sum = 0;
  int64_t thr_n = 0;
  double m_mse = 0, m_var = 0, m_l0 = 0;
  int64_t m_n = 0, rows = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    const auto x = batches(o.batch).to(torch::kFloat32) * c;  // [B, S, D]
    const int64_t B = x.size(0);
    torch::Tensor loss, f, xhat;
    double min_kept = 0;
    {
      torch::AutoGradMode grad(true);
      const auto pre = s.pre(x);
      f = act(s, pre, true, &min_kept);
      xhat = s.decode(f);
      const auto err = (xhat - x).square().sum(torch::IntArrayRef{1, 2});
      loss = err.mean();
      if (o.arch == SaeArch::kRelu) {
        const double lam = o.l1 * std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(std::max<int64_t>(1, o.l1_warmup)));
        loss = loss + lam * (f * s.W_dec.square().sum(torch::IntArrayRef{0, 2}).sqrt()).sum(-1).mean();
      } else {
        const auto dead = since_fired >= o.dead_rows;
        const int64_t n_dead = dead.sum().item<int64_t>();
        if (n_dead > 0) {  // the most active dead latents reconstruct what the live ones miss
          const auto masked = pre.masked_fill(dead.logical_not().unsqueeze(0), -1e30);
          const auto fa = topk_rows(masked, std::min<int64_t>(o.aux_k, n_dead));
          const auto ehat = torch::einsum("bf,sfi->bsi", {fa, s.W_dec});
          const auto e = (x - xhat).detach();
          const auto aux = (ehat - e).square().sum(torch::IntArrayRef{1, 2}).mean() / e.square().sum(torch::IntArrayRef{1, 2}).mean().clamp_min(1e-12);
          loss = loss + o.aux_coeff * aux;
        }
      }
      opt.zero_grad();
      loss.backward();
    }
    // the decoder gradient's component along each (unit) row removed, step, rows renormalised
    auto& g = s.W_dec.mutable_grad();
    g -= (g * s.W_dec).sum(torch::IntArrayRef{0, 2}, true) * s.W_dec;
    opt.step();
    s.W_dec.div_(s.W_dec.square().sum(torch::IntArrayRef{0, 2}, true).sqrt().clamp_min(1e-12));
    const auto fired = (f > 0).any(0);
    since_fired = torch::where(fired, torch::zeros_like(since_fired), since_fired + B);
    if (o.arch == SaeArch::kBatchTopK && min_kept > 0) thr_sum += min_kept, ++thr_n;
    rows += B;
    if (step >= o.steps - o.log_every || (step + 1) % o.log_every == 0) {
      const double mse = (xhat - x).square().sum(torch::IntArrayRef{1, 2}).mean().item<double>();
      const double var = (x - x.mean(0, true)).square().sum(torch::IntArrayRef{1, 2}).mean().item<double>();
      const double l0 = (f > 0).sum(-1).to(torch::kFloat64).mean().item<double>();
      if (step >= o.steps - o.log_every) m_mse += mse, m_var += var, m_l0 += l0, ++m_n;
      if (o.progress && (step + 1) % o.log_every == 0) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        o.progress({{"step", step + 1}, {"mse", mse}, {"explained_variance", 1 - mse / var}, {"l0", l0},
                    {"dead_fraction", (since_fired >= o.dead_rows).to(torch::kFloat64).mean().item<double>()},
                    {"rows_per_second", static_cast<double>(rows) / std::max(1e-9, secs)}});
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // detach and fold the scale c in: the formula then holds on raw activations
  Sae out;
  out.arch = s.arch;
  out.k = s.k;
  out.threshold = thr_n > 0 ? thr_sum / static_cast<double>(thr_n) : 0.0;
  out.W_enc = (s.W_enc.detach() * c).contiguous();
  out.b_enc = s.b_enc.detach().clone();
  out.W_dec = (s.W_dec.detach() / c).contiguous();
  out.b_dec = (s.b_dec.detach() / c).contiguous();
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

SaeBatches dump_batches(const ActivationStore& store, const std::string& hook, int64_t buffer_rows, uint64_t seed) {
  const auto& hooks = store.hooks();
  CCC_CHECK(std::find(hooks.begin(), hooks.end(), hook) != hooks.end(), store.path(), ": no hook ", hook, " in the dump");
  int64_t d = 1;
  for (int64_t x : store.row_shape(hook)) d *= x;
  const auto pos = store.positions();
  std::vector<int64_t> rows;  // non-BOS rows, in file order
  for (size_t i = 0; i < pos.size(); ++i)
    if (pos[i] != 0) rows.push_back(static_cast<int64_t>(i));
  CCC_CHECK(!rows.empty(), store.path(), ": no activation rows (only BOS)");
  struct State {
    torch::Tensor buf;
    size_t next = 0;  // the next index of `rows` to read
    std::mt19937_64 rng;
  };
  auto st = std::make_shared<State>();
  st->rng.seed(seed);
  const int64_t B = std::min<int64_t>(buffer_rows, static_cast<int64_t>(rows.size()));
  st->buf = torch::empty({B, d});
  // `n` next rows of the file (in order, wrapping) as [n, d]
  auto read = [&store, hook, rows, d, st](int64_t n) {
    auto out = torch::empty({n, d});
    int64_t got = 0;
    while (got < n) {
      // a contiguous run of file rows starting at rows[next]
      const int64_t first = rows[st->next];
      int64_t len = 1;
      while (got + len < n && st->next + static_cast<size_t>(len) < rows.size() &&
             rows[st->next + static_cast<size_t>(len)] == first + len)
        ++len;
      const auto m = store.block(hook, first, len);
      std::memcpy(out[got].data_ptr<float>(), m.data(), sizeof(float) * static_cast<size_t>(len * d));
      got += len;
      st->next = (st->next + static_cast<size_t>(len)) % rows.size();
    }
    return out;
  };
  st->buf.copy_(read(B));
  return [st, read, B](int64_t n) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (auto& i : idx) i = static_cast<int64_t>(st->rng() % static_cast<uint64_t>(B));
    auto index = torch::tensor(idx, torch::kInt64);
    auto out = st->buf.index_select(0, index).unsqueeze(1);
    st->buf.index_copy_(0, index, read(n));  // drawn slots refilled in file order
    return out;
  };
}

void save_sae(const Sae& sae, const std::string& dir, const nlohmann::json& meta) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  CCC_CHECK(!ec, dir, ": cannot create the directory (", ec.message(), ")");
  const bool one = sae.sources() == 1;
  std::map<std::string, torch::Tensor> t = {{"W_enc", one ? sae.W_enc[0] : sae.W_enc},
                                            {"b_enc", sae.b_enc},
                                            {"W_dec", one ? sae.W_dec[0] : sae.W_dec},
                                            {"b_dec", one ? sae.b_dec[0] : sae.b_dec}};
  if (sae.arch == SaeArch::kBatchTopK) t["threshold"] = torch::full({1}, sae.threshold);
  model::safetensors_save((fs::path(dir) / "sae.safetensors").string(), t);
  nlohmann::json j = meta;
  j["architecture"] = to_string(sae.arch);
  j["sources"] = sae.sources();
  j["d_in"] = sae.d_in();
  j["d_sae"] = sae.d_sae();
  j["k"] = sae.k;
  j["threshold"] = sae.threshold;
  write_file_atomic((fs::path(dir) / "sae.json").string(), j.dump(2) + "\n");
}

Sae load_sae(const std::string& dir) {
  const std::string jf = (fs::path(dir) / "sae.json").string(), tf = (fs::path(dir) / "sae.safetensors").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(jf));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(jf, ": not valid JSON (", e.what(), ")");
  }
  Sae s;
  s.arch = parse_sae_arch(j.value("architecture", ""));
  s.k = j.value("k", int64_t{32});
  s.threshold = j.value("threshold", 0.0);
  const int64_t S = j.value("sources", int64_t{1}), D = j.value("d_in", int64_t{0}), F = j.value("d_sae", int64_t{0});
  auto t = model::load_safetensors_float(tf);
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    CCC_CHECK(t.count(name), tf, ": no tensor ", name);
    auto x = t.at(name);
    if (S == 1) shape.erase(shape.begin());
    CCC_CHECK(x.sizes().vec() == shape, tf, ": ", name, " is ", x.sizes(), ", sae.json says ", torch::IntArrayRef(shape));
    return S == 1 ? x.unsqueeze(0).contiguous() : x;
  };
  s.W_enc = get("W_enc", {S, D, F});
  s.W_dec = get("W_dec", {S, F, D});
  s.b_dec = get("b_dec", {S, D});
  CCC_CHECK(t.count("b_enc") && t.at("b_enc").sizes().vec() == std::vector<int64_t>{F}, tf, ": b_enc missing or not [", F, "]");
  s.b_enc = t.at("b_enc");
  return s;
}

}  // namespace ccc::analysis
