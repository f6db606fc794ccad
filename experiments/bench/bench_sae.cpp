#include "experiments/bench/bench_sae.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include <torch/torch.h>

#include "analysis/activation_store.h"
#include "analysis/capture.h"
#include "analysis/sae.h"
#include "compress/lm_codec.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/hooks.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

// Best GFLOP/s of the encoder's product [rows, d] x [d, f] (+ bias) over `reps` runs.
double encode_roofline_gflops(int64_t rows, int64_t d, int64_t f, int reps) {
  torch::NoGradGuard ng;
  const auto x = torch::randn({rows, d}), w = torch::randn({f, d}), b = torch::randn({f});
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto y = torch::addmm(b, x, w.t());
    const double s = seconds_since(t0);
    if (r > 0) best = std::max(best, 2.0 * static_cast<double>(rows * d * f) / s / 1e9);  // the first run warms up
    CCC_CHECK(y.size(0) == rows, "bench sae: the roofline product has the wrong shape");
  }
  return best;
}

// The baseline: the same topk step as a dense autograd graph (f scattered into [rows, d_sae], x̂ = f W_dec,
// backward through both products), as a straightforward implementation computes it; rows/s over `steps`.
double dense_step_rows_per_second(const torch::Tensor& X, int64_t f, int64_t k, int64_t steps) {
  const int64_t d = X.size(1);
  auto We = (torch::randn({d, f}) * 0.03).requires_grad_(true), be = torch::zeros({f}).requires_grad_(true);
  auto Wd = (torch::randn({f, d}) * 0.03).requires_grad_(true), bd = torch::zeros({d}).requires_grad_(true);
  double secs = 0;
  for (int64_t s = 0; s < steps + 1; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto pre = torch::addmm(be, X - bd, We);
    auto [v, i] = pre.topk(k, -1);
    const auto acts = torch::zeros_like(pre).scatter(-1, i, torch::relu(v));
    const auto loss = (torch::addmm(bd, acts, Wd) - X).square().sum(-1).mean();
    loss.backward();
    for (auto* t : {&We, &be, &Wd, &bd}) t->mutable_grad().zero_();
    if (s > 0) secs += seconds_since(t0);  // the first step warms up
  }
  return static_cast<double>(steps * X.size(0)) / secs;
}

}  // namespace

void bench_sae(const BenchSaeOptions& o, std::ostream& out) {
  const fs::path tmp = fs::temp_directory_path() / ("ccc-bench-sae-" + std::to_string(::getpid()));
  std::string dump = o.dump, hook = o.hook;
  if (dump.empty()) {  // a dump of the model's last mlp.hook_post over held-out text
    std::error_code ec;
    fs::create_directories(tmp, ec);
    auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
    CCC_CHECK(m.config.d_mlp > 0, m.source, ": no MLP (bench sae reads the last mlp.hook_post)");
    hook = model::hook_name(m.config.n_layers - 1, "mlp.hook_post");
    std::string text;
    const auto sources = held_out_sources("");
    for (size_t i = 0; static_cast<int64_t>(text.size()) < o.rows; ++i) {
      const auto& t = sources[i % sources.size()].second;
      const size_t take = std::min<size_t>(t.size(), 4000);
      text += t.substr((i / sources.size()) * take % std::max<size_t>(1, t.size() - take), take);
    }
    text.resize(static_cast<size_t>(o.rows));
    dump = (tmp / "d.h5").string();
    write_file_atomic((tmp / "text.txt").string(), text);
    compress::CodecOptions codec;
    analysis::CaptureOptions c;
    c.out = dump;
    c.hooks = {hook};
    c.source = (tmp / "text.txt").string();
    analysis::ActivationCapture cap(m, text, codec, c);
    cap.attach(codec, codec);
    compress::lm_compress(m, text, codec);
    cap.finish();
  }
  CCC_CHECK(!hook.empty(), "bench sae: --dump needs --hook");
  analysis::ActivationStore store(dump);
  int64_t d = 1;
  for (int64_t x : store.row_shape(hook)) d *= x;
  const int64_t f = o.expansion * d;
  const double roof_before = encode_roofline_gflops(o.batch, d, f, 3);
  // the dump's read rate through the shuffle buffer alone (the floor of reading rows for training)
  auto read = analysis::dump_batches(store, hook, 1 << 18, 0);
  auto t0 = std::chrono::steady_clock::now();
  double sink = 0;
  for (int64_t s = 0; s < o.steps; ++s) sink += read(o.batch)[0][0][0].item<double>();
  const double read_rps = static_cast<double>(o.steps * o.batch) / seconds_since(t0);
  CCC_CHECK(std::isfinite(sink), dump, ": non-finite activations");
  // training: topk, the default dictionary
  analysis::SaeTrainOptions t;
  t.arch = analysis::SaeArch::kTopK;
  t.d_sae = f;
  t.k = o.k;
  t.steps = o.steps;
  t.batch = o.batch;
  t.log_every = o.steps;
  analysis::SaeTrainMetrics met;
  analysis::train_sae(analysis::dump_batches(store, hook, 1 << 18, 1), t, &met);
  const double roof = std::max(roof_before, encode_roofline_gflops(o.batch, d, f, 3));
  const double dense_rps = dense_step_rows_per_second(analysis::dump_batches(store, hook, 1 << 18, 2)(o.batch).squeeze(1),
                                                      f, o.k, std::max<int64_t>(1, o.steps / 4));
  // FLOPs per row: the encoder's dense product 2·d·f; decoding and the three sparse gradient products
  // (decoder rows, selected encoder columns, the latents' dot products) 2·k·d each
  const double flops_row = 2.0 * static_cast<double>(d * f) + 8.0 * static_cast<double>(o.k * d);
  const double dense_row = 6.0 * 2.0 * static_cast<double>(d * f);  // a dense step: six products of d x f
  const double rps = met.rows_per_second, gflops = flops_row * rps / 1e9;
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "bench sae: topk k=%lld, d_in %lld, expansion %lld (d_sae %lld), batch %lld, %lld steps, dump %s (%s), %s\n"
                "| measure | value |\n|---|---|\n"
                "| training rows/s (read from the dump) | %.0f |\n"
                "| baseline: the same step as a dense autograd graph (no optimiser, batches in memory) | %.0f rows/s (%.2fx) |\n"
                "| training rows per hour | %.1f M (target 100 M) |\n"
                "| dump read rate through the shuffle buffer alone (baseline) | %.0f rows/s |\n"
                "| achieved GFLOP/s, FLOPs computed (2·d·f + 8·k·d per row) | %.1f |\n"
                "| encoder matmul roofline GFLOP/s, [%lld, %lld] x [%lld, %lld] (same run, best of before and after) | %.1f |\n"
                "| fraction of roofline | %.1f%% (target >= 50%%) |\n"
                "| dense-step equivalent GFLOP/s (6 products of d x f per row) | %.1f |\n"
                "| rows/s the roofline allows for the encoder's product alone | %.0f |\n",
                (long long)o.k, (long long)d, (long long)o.expansion, (long long)f, (long long)o.batch, (long long)o.steps,
                dump.c_str(), hook.c_str(), machine_description().c_str(), rps, dense_rps, rps / dense_rps, rps * 3600 / 1e6, read_rps, gflops,
                (long long)o.batch, (long long)d, (long long)d, (long long)f, roof, 100.0 * gflops / roof,
                dense_row * rps / 1e9, roof * 1e9 / (2.0 * static_cast<double>(d * f)));
  out << buf;
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace ccc::experiments
