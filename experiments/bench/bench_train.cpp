#include "experiments/bench/bench_train.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/core/fused_ops.h"
#include "model/training/corpus.h"
#include "model/training/trainer.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

void bench_train(const BenchTrainOptions& o) {
  const auto cfg = model::TrainConfigFile::load(o.config);
  auto corpora = model::load_corpora(corpora_dir_or_default(o.corpora_dir), cfg.train.corpora);
  model::Transformer m(cfg.model);
  m->init_weights(cfg.train.seed);
  auto topt = cfg.train;
  topt.eval_every = 0;
  topt.steps = o.steps + 3;  // one step past the timed run: the trainer's closing validation is not timed
  topt.warmup_steps = 0;
  model::Trainer trainer(m, topt, corpora);
  trainer.run(2);  // warm-up
  // the roofline before and after the timed steps, the better of the two (a busy machine reads low)
  const double roof_before = matmul_roofline_gflops(topt.batch_size * topt.seq_len, cfg.model.d_model, 3);
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run(o.steps + 2);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tokens = static_cast<double>(o.steps * topt.batch_size * topt.seq_len * topt.grad_accum);
  const auto& c = cfg.model;
  // forward + backward = 3x forward FLOPs: 6·N per token + attention's QKᵀ and PV, x3. Model FLOPs count
  // the full T x T square (the MFU convention); the causal kernel computes only its query blocks' pairs.
  const double T = static_cast<double>(topt.seq_len);
  const double attn_per_pair = 3.0 * 4.0 * c.n_layers * c.n_heads * c.d_head;
  const double model_flops = 6.0 * c.n_matmul_params() + attn_per_pair * T;
  const double done_flops =
      6.0 * c.n_matmul_params() + attn_per_pair * static_cast<double>(model::causal_attention_pairs(topt.seq_len)) / T;
  const double gflops = model_flops * tokens / dt / 1e9, done_gflops = done_flops * tokens / dt / 1e9;
  const double roof = std::max(roof_before, matmul_roofline_gflops(topt.batch_size * topt.seq_len, c.d_model, 3));
  std::printf("config %s: %.2fM params, batch %lld x %lld tokens, %lld steps\n", o.config.c_str(), c.n_params() / 1e6,
              (long long)topt.batch_size, (long long)topt.seq_len, (long long)o.steps);
  std::printf("| measure | value |\n|---|---|\n");
  std::printf("| training tokens/s | %.0f |\n", tokens / dt);
  std::printf("| achieved GFLOP/s, model FLOPs (6N + full-square attention per token) | %.1f |\n", gflops);
  std::printf("| achieved GFLOP/s, FLOPs computed (6N + the causal kernel's blocks, %.0f%% of the square) | %.1f |\n",
              100.0 * static_cast<double>(model::causal_attention_pairs(topt.seq_len)) / (T * T), done_gflops);
  std::printf("| matmul roofline GFLOP/s (same run, best of before and after) | %.1f |\n", roof);
  std::printf("| fraction of roofline, model FLOPs | %.1f%% |\n| fraction of roofline, FLOPs computed | %.1f%% |\n",
              100 * gflops / roof, 100 * done_gflops / roof);
}

}  // namespace ccc::experiments
