#include "experiments/lib/scaling.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "circuits/sweep.h"
#include "model/base/error.h"

namespace ccc::experiments {

namespace {

constexpr size_t kBlock = 256;  // tokens per block of the bootstrap

}  // namespace

int64_t non_embedding_params(const model::ModelConfig& c) {
  int64_t total = c.n_params();
  total -= c.d_vocab * c.d_model;                                   // W_E
  if (!c.tied_embed) total -= c.d_vocab_out * c.d_model;            // W_U
  if (c.pos == model::PosKind::kLearned) total -= c.n_ctx * c.d_model;  // W_pos
  return total;
}

std::pair<double, double> fit_power_law(const std::vector<double>& x, const std::vector<double>& y) {
  CCC_CHECK(x.size() == y.size() && x.size() >= 2, "power-law fit: needs at least 2 points (", x.size(), ", ", y.size(), ")");
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += std::log2(x[i]) / n, my += std::log2(y[i]) / n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = std::log2(x[i]) - mx;
    sxx += dx * dx, sxy += dx * (std::log2(y[i]) - my);
  }
  CCC_CHECK(sxx > 0, "power-law fit: every point has the same size");
  const double slope = sxy / sxx;
  return {-slope, my - slope * mx};
}

Result run_scaling(const std::vector<model::LoadedModel*>& models, const std::vector<std::pair<std::string, std::string>>& domains,
                   const ScalingOptions& o, ScalingDetail* detail) {
  CCC_CHECK(models.size() >= 3, "scaling: needs at least 3 models of different sizes (given ", models.size(), ")");
  CCC_CHECK(!domains.empty(), "scaling: no domain text");
  const size_t M = models.size(), D = domains.size();
  std::vector<double> params;
  for (const auto* m : models) {
    CCC_CHECK(m->config.d_vocab_out == 256, "scaling: ", m->source, " is not a byte-level model (bits per byte compare only across byte models)");
    params.push_back(static_cast<double>(non_embedding_params(m->config)));
  }
  Result r;
  r.experiment = "scaling";
  r.hypothesis = "Across the shipped family, held-out bits per byte fall as a power law of the parameter count: the fitted "
                 "exponent is positive beyond what models that do not differ give (their bits exchanged block by block).";
  r.claim = "Bigger models compress better, smoothly: bits per byte fall as a power law of parameters (the seed's figure).";
  r.headline = "power_law_exponent";
  r.seed = o.seed;
  // per-token bits [model][domain] (byte models: one token per byte, the same segmentation for all)
  std::vector<std::vector<std::vector<double>>> bits(M, std::vector<std::vector<double>>(D));
  circuits::ScoringRun run;
  run.streams = o.streams;
  for (size_t i = 0; i < M; ++i) {
    for (size_t d = 0; d < D; ++d) {
      bits[i][d] = circuits::ablated_bits(*models[i], domains[d].second, run, {}, nullptr);
      CCC_CHECK(bits[i][d].size() == bits[0][d].size(), "scaling: ", models[i]->source, " codes ", bits[i][d].size(),
                " tokens of ", domains[d].first, ", ", models[0]->source, " ", bits[0][d].size());
    }
    if (o.progress) o.progress("models", static_cast<int64_t>(i + 1), static_cast<int64_t>(M));
  }
  // per-block sums: block_bits[d][b][i], block_bytes[d][b]
  std::vector<std::vector<std::vector<double>>> block_bits(D);
  std::vector<std::vector<double>> block_bytes(D);
  for (size_t d = 0; d < D; ++d) {
    const size_t T = bits[0][d].size(), nb = (T + kBlock - 1) / kBlock;
    block_bits[d].assign(nb, std::vector<double>(M, 0));
    block_bytes[d].assign(nb, 0);
    for (size_t t = 0; t < T; ++t) {
      block_bytes[d][t / kBlock] += 1;
      for (size_t i = 0; i < M; ++i) block_bits[d][t / kBlock][i] += bits[i][d][t];
    }
  }
  // bits per byte [model][domain] of some blocks (identity = the text itself); `perm` (optional) gives each
  // drawn block its own assignment of models (the null: models exchangeable within a block)
  auto bpb_of = [&](const std::vector<std::vector<size_t>>& blocks, const std::vector<std::vector<std::vector<size_t>>>* perm = nullptr) {
    std::vector<std::vector<double>> out(M, std::vector<double>(D, 0));
    for (size_t d = 0; d < D; ++d) {
      double bytes = 0;
      for (size_t k = 0; k < blocks[d].size(); ++k) {
        const size_t b = blocks[d][k];
        bytes += block_bytes[d][b];
        for (size_t i = 0; i < M; ++i) out[i][d] += block_bits[d][b][perm ? (*perm)[d][k][i] : i];
      }
      for (size_t i = 0; i < M; ++i) out[i][d] /= bytes;
    }
    return out;
  };
  auto fits = [&](const std::vector<std::vector<double>>& bpb, const std::vector<double>& size) {
    std::vector<double> alpha(D + 1);
    std::vector<double> mean(M, 0);
    for (size_t d = 0; d < D; ++d) {
      std::vector<double> y(M);
      for (size_t i = 0; i < M; ++i) y[i] = bpb[i][d], mean[i] += bpb[i][d] / static_cast<double>(D);
      alpha[d] = fit_power_law(size, y).first;
    }
    alpha[D] = fit_power_law(size, mean).first;
    return alpha;
  };
  std::vector<std::vector<size_t>> identity(D);
  for (size_t d = 0; d < D; ++d) {
    identity[d].resize((bits[0][d].size() + kBlock - 1) / kBlock);
    std::iota(identity[d].begin(), identity[d].end(), 0);
  }
  const auto bpb = bpb_of(identity);
  const auto alpha = fits(bpb, params);
  std::mt19937_64 rng(o.seed ^ 0x5CA1EULL);
  std::vector<std::vector<double>> boot(D + 1);
  for (int64_t b = 0; b < o.resamples; ++b) {
    std::vector<std::vector<size_t>> draw(D);
    for (size_t d = 0; d < D; ++d)
      for (size_t k = 0; k < identity[d].size(); ++k) draw[d].push_back(static_cast<size_t>(rng() % identity[d].size()));
    const auto a = fits(bpb_of(draw), params);
    for (size_t d = 0; d <= D; ++d) boot[d].push_back(a[d]);
    if (o.progress && (b + 1) % 50 == 0) o.progress("bootstrap", b + 1, o.resamples);
  }
  auto with_ci = [&](const std::string& name, double value, std::vector<double> draws) {
    Measurement m;
    m.name = name;
    m.value = value;
    m.unit = "exponent (bits per byte ~ params^-alpha)";
    set_percentile_ci(m, draws);
    m.ci_method = "percentile block bootstrap over the text (blocks of " + std::to_string(kBlock) + " bytes per domain, " +
                  std::to_string(draws.size()) + " resamples; every model scored on the same blocks)";
    return m;
  };
  r.measurements.push_back(with_ci("power_law_exponent", alpha[D], boot[D]));
  for (size_t d = 0; d < D; ++d) r.measurements.push_back(with_ci("power_law_exponent_" + domains[d].first, alpha[d], boot[d]));
  // null: no model better than another — within every block the models' bits exchanged at random
  std::vector<double> null;
  std::vector<std::vector<std::vector<size_t>>> perm(D);
  for (int64_t k = 0; k < o.null_draws; ++k) {
    for (size_t d = 0; d < D; ++d) {
      perm[d].resize(identity[d].size());
      for (auto& p : perm[d]) {
        p.resize(M);
        std::iota(p.begin(), p.end(), 0);
        std::shuffle(p.begin(), p.end(), rng);
      }
    }
    null.push_back(fits(bpb_of(identity, &perm), params)[D]);
  }
  r.null.push_back(over_draws("power_law_exponent", null, "exponent (bits per byte ~ params^-alpha)",
                              "draws with the models' bits exchanged at random within every block of the text"));
  for (size_t i = 0; i < M; ++i) {
    std::vector<double> per;
    double mean = 0;
    for (size_t d = 0; d < D; ++d) mean += bpb[i][d] / static_cast<double>(D);
    Measurement m;
    m.name = "bits_per_byte_" + std::filesystem::path(models[i]->source).filename().string();
    m.value = mean;
    m.unit = "bits_per_byte (mean over domains)";
    std::vector<double> draws;
    std::mt19937_64 brng(o.seed + i);
    for (int64_t b = 0; b < std::min<int64_t>(o.resamples, 200); ++b) {
      std::vector<std::vector<size_t>> draw(D);
      for (size_t d = 0; d < D; ++d)
        for (size_t k = 0; k < identity[d].size(); ++k) draw[d].push_back(static_cast<size_t>(brng() % identity[d].size()));
      const auto x = bpb_of(draw);
      double s = 0;
      for (size_t d = 0; d < D; ++d) s += x[i][d] / static_cast<double>(D);
      draws.push_back(s);
    }
    set_percentile_ci(m, draws);
    m.ci_method = "percentile block bootstrap over the text, " + std::to_string(draws.size()) + " resamples";
    r.measurements.push_back(m);
  }
  const Verdict v = decide(r.measurements[0], r.null[0], +1, 0.02);
  r.verdict = v;
  r.verdict_rule = rule_text(+1, 0.02, "power_law_exponent", "its exchangeable-models null");
  for (size_t i = 0; i < M; ++i) r.model += (i ? "," : "") + std::filesystem::path(models[i]->source).filename().string();
  if (detail != nullptr) {
    *detail = ScalingDetail{};
    for (size_t i = 0; i < M; ++i) {
      detail->models.push_back(std::filesystem::path(models[i]->source).filename().string());
      detail->params.push_back(static_cast<int64_t>(params[i]));
      detail->params_total.push_back(models[i]->config.n_params());
      double mean = 0;
      for (size_t d = 0; d < D; ++d) mean += bpb[i][d] / static_cast<double>(D);
      detail->mean_bits_per_byte.push_back(mean);
    }
    for (const auto& [name, text] : domains) detail->domains.push_back(name);
    detail->bits_per_byte = bpb;
    for (size_t d = 0; d < D; ++d) {
      std::vector<double> y(M);
      for (size_t i = 0; i < M; ++i) y[i] = bpb[i][d];
      const auto [a, b] = fit_power_law(params, y);
      detail->exponent.push_back(a), detail->intercept.push_back(b);
    }
    const auto [a, b] = fit_power_law(params, detail->mean_bits_per_byte);
    detail->exponent_all = a, detail->intercept_all = b;
  }
  return r;
}

}  // namespace ccc::experiments
