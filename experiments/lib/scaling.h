#pragma once
// The `scaling` experiment, the seed's figure: bits per byte against parameters across a family of models on
// each held-out domain, a power law bpb = a · N^(−α) fitted by least squares in log–log (N = non-embedding
// parameters), α with a CI from a block bootstrap over the text (every model scored on the same resampled
// blocks), against the null that the models do not differ (within every block of the text the models' bits
// are exchanged at random: a permutation test with far more arrangements than the models' sizes allow). Classic
// compressors' figures on the same domains are drawn beside the models (measured by the caller).

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "experiments/lib/result.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct ScalingOptions {
  int64_t streams = 0;  ///< the compressor's segmentation (0 = automatic)
  uint64_t seed = 0;
  int64_t resamples = 1000;
  int64_t null_draws = 200;  ///< draws of the exchangeable-models null
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

struct ScalingDetail {
  std::vector<std::string> models, domains;
  std::vector<int64_t> params, params_total;           ///< non-embedding, and all parameters
  std::vector<std::vector<double>> bits_per_byte;      ///< [model][domain]
  std::vector<double> mean_bits_per_byte;              ///< [model]: the domains' mean
  std::vector<double> exponent, intercept;             ///< per domain: α and log2 a of the fit
  double exponent_all = 0, intercept_all = 0;          ///< fitted to the domains' mean
};

/// Non-embedding parameters of a config (every block's weights and biases, the final norm).
int64_t non_embedding_params(const model::ModelConfig& c);

/// Least squares of log2(y) = b − α · log2(x): returns {α, b}. Throws ccc::Error for fewer than 2 points or
/// one x.
std::pair<double, double> fit_power_law(const std::vector<double>& x, const std::vector<double>& y);

/// Scores every model (byte-level, at least 3) on every domain text (name, bytes) under the compressor's
/// segmentation. The caller fills input identity; `model` is set to the family's names.
Result run_scaling(const std::vector<model::LoadedModel*>& models,
                   const std::vector<std::pair<std::string, std::string>>& domains, const ScalingOptions& o,
                   ScalingDetail* detail = nullptr);

}  // namespace ccc::experiments
