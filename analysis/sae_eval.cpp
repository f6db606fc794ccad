#include "analysis/sae_eval.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "model/base/error.h"

namespace ccc::analysis {

void check_sae_fits(const model::LoadedModel& m, const Sae& sae, const std::string& hook, const std::string& what) {
  CCC_CHECK(sae.sources() == 1, what, ": a dictionary over ", sae.sources(), " sources (a crosscoder) cannot be spliced into one model");
  for (const auto& [name, shape] : m.model->hook_shapes()) {
    if (name != hook) continue;
    CCC_CHECK(shape.size() >= 3 && shape[0] == "batch" && shape[1] == "pos", what, ": hook ", hook,
              " is not per position");
    int64_t d = 1;
    for (size_t i = 2; i < shape.size(); ++i) d *= std::stoll(shape[i]);
    CCC_CHECK(d == sae.d_in(), what, ": the dictionary reads ", sae.d_in(), " values per position, hook ", hook, " of ",
              m.source, " has ", d);
    return;
  }
  CCC_FAIL(what, ": the model ", m.source, " has no hook ", hook);
}

void install_row_edit(model::HookSet& hooks, const std::string& hook, RowEdit replace) {
  hooks.edit(hook, [replace = std::move(replace)](const torch::Tensor& x, const model::HookContext& ctx) {
    const int64_t b = x.size(0), p = x.size(1);
    const auto rows = x.reshape({b * p, -1});
    auto keep = torch::zeros({b * p}, torch::kBool);  // BOS positions keep their activation
    bool* k = keep.data_ptr<bool>();
    for (int64_t r = 0; r < b; ++r) {
      const int64_t row = ctx.rows != nullptr ? (*ctx.rows)[static_cast<size_t>(r)] : r;
      for (int64_t i = 0; i < p; ++i)
        k[r * p + i] = ctx.run != nullptr ? ctx.run->position_at(row, i) == 0 : ctx.pos_offset + i == 0;
    }
    const auto y = replace(rows.to(torch::kFloat32)).to(x.dtype());
    return torch::where(keep.unsqueeze(1), rows, y).view(x.sizes());
  });
}

void install_sae_splice(model::HookSet& hooks, const Sae& sae, const std::string& hook) {
  install_row_edit(hooks, hook, [&sae](const torch::Tensor& x) {
    return sae.reconstruct(x.unsqueeze(1)).squeeze(1);
  });
}

void install_feature_ablation(model::HookSet& hooks, const Sae& sae, const std::string& hook,
                              const std::vector<int64_t>& features) {
  for (int64_t j : features)
    CCC_CHECK(j >= 0 && j < sae.d_sae(), "feature ", j, " is out of range (the dictionary has ", sae.d_sae(), ")");
  const auto idx = torch::tensor(features, torch::kInt64);
  install_row_edit(hooks, hook, [&sae, idx](const torch::Tensor& x) {
    const auto f = sae.encode(x.unsqueeze(1)).index_select(1, idx);  // [rows, n]
    return x - torch::mm(f, sae.W_dec[0].index_select(0, idx));
  });
}

UnitOptions::Derived sae_feature_units(const Sae& sae, const std::string& hook) {
  CCC_CHECK(sae.sources() == 1, "features as units: a dictionary over ", sae.sources(), " sources");
  return {hook + ":sae", hook, sae.d_sae(), [&sae](const RowMatrix& rows) {
            torch::NoGradGuard ng;
            const auto x = torch::from_blob(const_cast<float*>(rows.data()), {rows.rows(), rows.cols()}, torch::kFloat32);
            const auto f = sae.encode(x.unsqueeze(1)).contiguous();
            RowMatrix out(rows.rows(), sae.d_sae());
            std::memcpy(out.data(), f.data_ptr<float>(), sizeof(float) * static_cast<size_t>(f.numel()));
            return out;
          }};
}

nlohmann::json SaeEval::to_json() const {
  auto bpb = [&](double b) { return bytes > 0 ? b / static_cast<double>(bytes) : 0.0; };
  return {{"rows", rows},
          {"tokens", tokens},
          {"bytes", bytes},
          {"l0", l0},
          {"explained_variance", explained_variance},
          {"dead_fraction", dead_fraction},
          {"dense_fraction", dense_fraction},
          {"bits_clean", bits_clean},
          {"bits_sae", bits_sae},
          {"bits_zero", bits_zero},
          {"bits_mean", bits_mean},
          {"bits_recovered", bits_recovered},
          {"bits_recovered_mean", bits_recovered_mean},
          {"bits_per_byte_clean", bpb(bits_clean)},
          {"bits_per_byte_sae", bpb(bits_sae)},
          {"bits_per_byte_zero", bpb(bits_zero)},
          {"bits_per_byte_mean", bpb(bits_mean)},
          {"delta_bits_sae", bits_sae - bits_clean}};
}

namespace {

double scored_bits(model::LoadedModel& m, std::string_view text, model::StreamOptions opt, model::HookSet* hooks,
                   int64_t* tokens = nullptr) {
  opt.hooks = [hooks](int64_t) { return hooks; };
  double total = 0;
  int64_t n = 0;
  for (const auto& s : model::segmented_token_bits(m, text, opt))
    for (double b : s) total += b, ++n;
  if (tokens != nullptr) *tokens = n;
  return total;
}

std::vector<double> flat_bits(model::LoadedModel& m, std::string_view text, model::StreamOptions opt, model::HookSet* hooks) {
  opt.hooks = [hooks](int64_t) { return hooks; };
  std::vector<double> out;
  for (const auto& s : model::segmented_token_bits(m, text, opt)) out.insert(out.end(), s.begin(), s.end());
  return out;
}

}  // namespace

std::vector<std::vector<double>> feature_ablation_bits(model::LoadedModel& m, const Sae& sae, const std::string& hook,
                                                       std::string_view text, const model::StreamOptions& opt,
                                                       const std::vector<int64_t>& features) {
  check_sae_fits(m, sae, hook, "feature ablation");
  torch::NoGradGuard ng;
  std::vector<std::vector<double>> out;
  for (int64_t j : features) {
    model::HookSet hs;
    install_feature_ablation(hs, sae, hook, {j});
    out.push_back(flat_bits(m, text, opt, &hs));
  }
  return out;
}

SaeEval evaluate_sae(model::LoadedModel& m, const Sae& sae, const std::string& hook, std::string_view text,
                     const model::StreamOptions& opt) {
  check_sae_fits(m, sae, hook, "sae eval");
  torch::NoGradGuard ng;
  const int64_t D = sae.d_in(), F = sae.d_sae();
  // the clean run, observed: the dictionary's statistics on the activations it would replace
  auto sum = torch::zeros({D}, torch::kFloat64), fires = torch::zeros({F}, torch::kInt64);
  double sq = 0, err = 0, active = 0;
  int64_t rows = 0;
  model::HookSet observe;
  observe.observe(hook, [&](const torch::Tensor& x, const model::HookContext& ctx) {
    const int64_t b = x.size(0), p = x.size(1);
    std::vector<int64_t> keep;
    for (int64_t r = 0; r < b; ++r) {
      const int64_t row = ctx.rows != nullptr ? (*ctx.rows)[static_cast<size_t>(r)] : r;
      if (ctx.run != nullptr && !ctx.run->live[static_cast<size_t>(row)]) continue;
      for (int64_t i = 0; i < p; ++i)
        if (ctx.run != nullptr ? ctx.run->position_at(row, i) > 0 : ctx.pos_offset + i > 0) keep.push_back(r * p + i);
    }
    if (keep.empty()) return;
    const auto xr = x.reshape({b * p, D}).index_select(0, torch::tensor(keep, torch::kInt64)).to(torch::kFloat32);
    const auto f = sae.encode(xr.unsqueeze(1));
    const auto xhat = sae.decode(f).squeeze(1);
    sum += xr.sum(0).to(torch::kFloat64);
    sq += xr.to(torch::kFloat64).square().sum().item<double>();
    err += (xhat - xr).to(torch::kFloat64).square().sum().item<double>();
    const auto on = f > 0;
    active += on.sum().item<double>();
    fires += on.sum(0);
    rows += xr.size(0);
  });
  SaeEval e;
  e.bits_clean = scored_bits(m, text, opt, &observe, &e.tokens);
  CCC_CHECK(rows > 0, "sae eval: the text gives no position to splice (", text.size(), " bytes)");
  e.rows = rows;
  e.bytes = static_cast<int64_t>(text.size());
  const auto mean = (sum / static_cast<double>(rows)).to(torch::kFloat32);
  const double var = sq - static_cast<double>(rows) * mean.to(torch::kFloat64).square().sum().item<double>();
  e.explained_variance = var > 0 ? 1 - err / var : 0;
  e.l0 = active / static_cast<double>(rows);
  e.fires.assign(fires.data_ptr<int64_t>(), fires.data_ptr<int64_t>() + F);
  int64_t dead = 0, dense = 0;
  for (int64_t c : e.fires) dead += c == 0, dense += static_cast<double>(c) > 0.1 * static_cast<double>(rows);
  e.dead_fraction = static_cast<double>(dead) / static_cast<double>(F);
  e.dense_fraction = static_cast<double>(dense) / static_cast<double>(F);
  // the spliced and ablated runs
  model::HookSet splice, zero, meaned;
  install_sae_splice(splice, sae, hook);
  install_row_edit(zero, hook, [](const torch::Tensor& x) { return torch::zeros_like(x); });
  install_row_edit(meaned, hook, [mean](const torch::Tensor& x) { return mean.unsqueeze(0).expand_as(x); });
  e.bits_sae = scored_bits(m, text, opt, &splice);
  e.bits_zero = scored_bits(m, text, opt, &zero);
  e.bits_mean = scored_bits(m, text, opt, &meaned);
  auto recovered = [&](double ablated) {
    return ablated != e.bits_clean ? (ablated - e.bits_sae) / (ablated - e.bits_clean) : 0.0;
  };
  e.bits_recovered = recovered(e.bits_zero);
  e.bits_recovered_mean = recovered(e.bits_mean);
  return e;
}

nlohmann::json SaeSweepPoint::to_json() const {
  nlohmann::json j = {{"arch", to_string(arch)}, {"training", train.to_json()}, {"eval", eval.to_json()}};
  if (arch == SaeArch::kRelu) j["l1"] = value;
  else j["k"] = static_cast<int64_t>(value);
  return j;
}

std::vector<SaeSweepPoint> sweep_sae(const std::function<SaeBatches()>& batches, const SaeTrainOptions& base,
                                     const SaeSweepSpec& spec, model::LoadedModel& m, const std::string& hook,
                                     std::string_view text, const model::StreamOptions& opt,
                                     const std::function<void(const SaeSweepPoint&, size_t i, size_t n)>& done) {
  std::vector<std::pair<SaeArch, double>> points;
  for (SaeArch a : spec.archs) {
    if (a == SaeArch::kRelu) {
      for (double l1 : spec.l1s) points.emplace_back(a, l1);
    } else {
      for (int64_t k : spec.ks) points.emplace_back(a, static_cast<double>(k));
    }
  }
  CCC_CHECK(!points.empty(), "sae sweep: no point to train (give k values for topk / batchtopk, L1 values for relu)");
  std::vector<SaeSweepPoint> out;
  for (const auto& [arch, value] : points) {
    SaeTrainOptions o = base;
    o.arch = arch;
    if (arch == SaeArch::kRelu) o.l1 = value;
    else o.k = static_cast<int64_t>(value);
    SaeSweepPoint p;
    p.arch = arch;
    p.value = value;
    p.sae = train_sae(batches(), o, &p.train);
    p.eval = evaluate_sae(m, p.sae, hook, text, opt);
    out.push_back(std::move(p));
    if (done) done(out.back(), out.size() - 1, points.size());
  }
  return out;
}

}  // namespace ccc::analysis
