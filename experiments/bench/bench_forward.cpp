#include "experiments/bench/bench_forward.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include <torch/torch.h>

#include "experiments/bench/bench_support.h"
#include "model/core/transformer.h"

namespace ccc::experiments {

void bench_forward(const BenchForwardOptions& opt, std::ostream& out) {
  torch::InferenceMode guard;
  model::ModelConfig c;
  c.arch = "gpt2";
  c.d_vocab = c.d_vocab_out = opt.d_vocab;
  c.d_model = opt.d_model;
  c.n_layers = opt.n_layers;
  c.n_heads = c.n_kv_heads = opt.n_heads;
  c.d_head = opt.d_model / opt.n_heads;
  c.d_mlp = 4 * opt.d_model;
  c.n_ctx = std::max<int64_t>(1024, opt.pos);
  c.tied_embed = true;
  c.bos_id = c.eos_id = opt.d_vocab - 1;
  model::Transformer m(c);
  m->init_weights(1);
  m->eval();
  auto tokens = torch::randint(0, opt.d_vocab, {opt.batch, opt.pos}, torch::kInt64);
  const int64_t n_tok = opt.batch * opt.pos;
  // FLOPs actually computed: 2·N per token for weight matmuls (unembedding included) + full QK^T and PV.
  const double flops = 2.0 * c.n_matmul_params() * n_tok +
                       2.0 * 2.0 * opt.batch * c.n_layers * c.n_heads * opt.pos * opt.pos * c.d_head;

  char line[256];
  std::snprintf(line, sizeof line, "model: gpt2-shaped random, %lld layers, d_model %lld, %lld heads, vocab %lld, %.1fM params\n",
                (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.d_vocab, c.n_params() / 1e6);
  out << line;
  std::snprintf(line, sizeof line, "input: batch %lld x pos %lld = %lld tokens, torch threads %d, %.1f GFLOP per forward\n",
                (long long)opt.batch, (long long)opt.pos, (long long)n_tok, torch::get_num_threads(), flops / 1e9);
  out << line;
  const double roof = matmul_roofline_gflops(n_tok, c.d_model, opt.reps);
  std::snprintf(line, sizeof line, "matmul roofline (fp32 GEMM, best of model shapes and 2048^3): %.1f GFLOP/s\n", roof);
  out << line;

  model::HookSet one_site;  // one site observed, every other site present but unused
  one_site.observe("hook_embed", [](const torch::Tensor&, const model::HookContext&) {});
  model::HookSet observe_all;
  int64_t observed = 0;
  observe_all.observe("*", [&](const torch::Tensor&, const model::HookContext&) { ++observed; });
  model::HookSet cache_all;
  cache_all.cache("*");
  struct Variant {
    const char* name;
    model::HookSet* hooks;
    double best = 1e30;
  };
  std::vector<Variant> variants = {{"no hooks", nullptr}, {"unused hooks (1 of all sites observed)", &one_site},
                                   {"all sites observed (no-op)", &observe_all}, {"full cache (every site)", &cache_all}};
  m->forward(tokens);  // warm-up
  for (int r = 0; r < opt.reps; ++r) {
    for (auto& v : variants) {
      if (v.hooks == &cache_all) cache_all.clear_cache();
      double t0 = now_s();
      auto logits = m->forward(tokens, {v.hooks});
      v.best = std::min(v.best, now_s() - t0);
    }
  }
  const size_t cached_sites = cache_all.cached().size();
  cache_all.clear_cache();
  const double base = variants[0].best;
  out << "\n| variant | seconds | tokens/s | GFLOP/s | % of roofline | overhead vs no hooks |\n";
  out << "|---|---|---|---|---|---|\n";
  for (const auto& v : variants) {
    std::snprintf(line, sizeof line, "| %s | %.3f | %.0f | %.1f | %.1f%% | %.3fx |\n", v.name, v.best, n_tok / v.best,
                  flops / v.best / 1e9, 100.0 * flops / v.best / 1e9 / roof, v.best / base);
    out << line;
  }
  std::snprintf(line, sizeof line, "\nsites per forward: observed %lld, cached %zu; best of %d reps, variants interleaved\n",
                (long long)(observed / std::max(1, opt.reps)), cached_sites, opt.reps);
  out << line;
  std::snprintf(line, sizeof line, "targets: >= 50%% of roofline; unused <= 1.02x; observed <= 1.10x; cache <= 1.30x\n");
  out << line;
}

}  // namespace ccc::experiments
