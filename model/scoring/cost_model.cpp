#include "model/scoring/cost_model.h"

#include <algorithm>

namespace ccc::model {

int64_t kv_bytes_per_key(const ModelConfig& cfg) {
  constexpr int64_t kHalfBytes = 2;
  return cfg.n_layers * 2 * cfg.n_kv_heads * cfg.d_head * kHalfBytes;
}

int64_t codec_cache_row_bytes(const ModelConfig& cfg, int64_t window) { return window * kv_bytes_per_key(cfg); }

namespace {

// Σ over fed positions of the keys each attends (one layer)
double codec_attention_keys(const ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const StreamOptions& opt) {
  const auto p = stream_policy(cfg, opt);
  const int64_t W = p.window, keep = p.rolling ? 0 : W - 1 - p.stride;
  double keys = 0;
  for (uint64_t n : n_tokens) {
    if (n == 0) continue;
    // fed tokens: BOS and every coded token but the last (each step feeds one and predicts the next)
    if (p.rolling) {
      const double m = static_cast<double>(n), w = static_cast<double>(W);
      const double ramp = std::min(m, w);  // positions 0 .. min(n, W) − 1 attend position + 1 keys
      keys += ramp * (ramp + 1) / 2 + (m - ramp) * w;
      continue;
    }
    int64_t len = 0;  // cache length before the step
    for (uint64_t i = 0; i < n; ++i) {
      if (len == W - 1) {  // restart: keep + 1 tokens fed, causal among themselves
        keys += static_cast<double>(keep + 1) * (keep + 2) / 2;
        len = keep + 1;
      } else {
        keys += static_cast<double>(len + 1);
        ++len;
      }
    }
  }
  return keys;
}

}  // namespace

double codec_attention_flops(const ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const StreamOptions& opt) {
  return 4.0 * codec_attention_keys(cfg, n_tokens, opt) * static_cast<double>(cfg.n_heads * cfg.d_head) *
         static_cast<double>(cfg.n_layers);
}

double codec_kv_cache_bytes(const ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const StreamOptions& opt) {
  return codec_attention_keys(cfg, n_tokens, opt) * static_cast<double>(kv_bytes_per_key(cfg));
}

}  // namespace ccc::model
