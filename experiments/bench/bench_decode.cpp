#include "experiments/bench/bench_decode.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <regex>

#include <torch/torch.h>

#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/kernels/blas_threads.h"
#include "model/kernels/parallel.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

// A llama2.c checkpoint (version-0 header, shared classifier) with random weights, and a tokenizer.bin
// of 512 pieces (specials, byte fallback <0x00>..<0xFF>, then two-letter pieces).
void write_llama2c(const std::string& path, const std::string& tok_path, int32_t dim, int32_t hidden, int32_t layers,
                   int32_t heads, int32_t vocab, int32_t seq_len, uint64_t seed) {
  std::string bytes;
  auto put_i = [&](int32_t v) { bytes.append(reinterpret_cast<const char*>(&v), 4); };
  auto put_f = [&](float v) { bytes.append(reinterpret_cast<const char*>(&v), 4); };
  for (int32_t v : {dim, hidden, layers, heads, heads, vocab, seq_len}) put_i(v);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  auto randn = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) put_f(nd(rng));
  };
  auto ones = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) put_f(1.0f);
  };
  const int64_t d = dim, L = layers, hd = dim / heads;
  // embedding; row 1 (BOS) is zero so the greedy argmax never returns BOS (llama2.c stops there)
  for (int64_t v = 0; v < vocab; ++v)
    for (int64_t i = 0; i < d; ++i) put_f(v == 1 ? 0.0f : nd(rng));
  ones(L * d);                        // rms_att
  randn(L * d * d * 4);               // wq, wk, wv, wo
  ones(L * d);                        // rms_ffn
  randn(L * hidden * d * 3);          // w1, w2, w3
  ones(d);                            // rms_final
  for (int64_t i = 0; i < 2 * seq_len * hd / 2; ++i) put_f(0.0f);  // freq_cis (unused by run.c and ccc)
  write_file_atomic(path, bytes);
  std::string tok;
  auto tput_i = [&](int32_t v) { tok.append(reinterpret_cast<const char*>(&v), 4); };
  auto tput_f = [&](float v) { tok.append(reinterpret_cast<const char*>(&v), 4); };
  tput_i(8);
  auto piece = [&](const std::string& s, float score) {
    tput_f(score);
    tput_i(static_cast<int32_t>(s.size()));
    tok += s;
  };
  piece("<unk>", 0);
  piece("\n<s>\n", 0);
  piece("\n</s>\n", 0);
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    piece(buf, 0);
  }
  for (int32_t id = 259; id < vocab; ++id) piece(std::string(1, static_cast<char>('a' + (id - 259) / 26 % 26)) +
                                                     std::string(1, static_cast<char>('a' + (id - 259) % 26)),
                                                 -static_cast<float>(id));
  write_file_atomic(tok_path, tok);
}

}  // namespace

void bench_decode(const BenchDecodeOptions& o, std::ostream& out) {
  CCC_CHECK(o.tokens >= 2 && o.batch >= 1 && o.reps >= 1, "bench decode: --tokens must be >= 2, --batch and --reps >= 1");
  CCC_CHECK(o.runc.empty() || fs::is_regular_file(o.runc), "bench decode: --runc ", o.runc, " is not a file");
  torch::InferenceMode guard;
  std::string path = o.model, tok = o.tokenizer;
  const std::string tmp = (fs::temp_directory_path() / ("ccc_bench_decode_" + std::to_string(::getpid()))).string();
  if (path.empty()) {
    fs::create_directories(tmp);
    path = tmp + "/model.bin";
    tok = tmp + "/tokenizer.bin";
    write_llama2c(path, tok, 288, 768, 6, 6, 512, 2048, 1);
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{o.model.empty() ? tmp : ""};
  auto m = model::load_model(path, tok);
  const auto& c = m.config;
  const int64_t N = std::min<int64_t>(o.tokens, c.n_ctx - 1);
  // FLOPs per token: 2 per weight (blocks and unembedding) + QK^T and PV over the positions attended
  const double w_flops = 2.0 * static_cast<double>(c.n_matmul_params());
  auto attn_flops = [&](double ctx) { return 4.0 * c.n_layers * c.n_heads * c.d_head * ctx; };

  // B = 1 greedy (fp32 cache of n_ctx, as generate); timed from the second token, as run.c does
  auto greedy = [&](std::vector<int64_t>* ids) {
    auto cache = m.model->make_cache(1);
    auto input = torch::full({1, 1}, c.bos_id, torch::kInt64);
    double t0 = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (i == 1) t0 = now_s();
      auto logits = m.model->forward(input, {nullptr, &cache});
      const int64_t next = logits.view({-1}).argmax().item<int64_t>();
      if (ids) ids->push_back(next);
      input.fill_(next);
    }
    return (N - 1) / (now_s() - t0);
  };
  // batched: `batch` rows through a rolling fp16 cache of n_ctx / 2 (the compressor's step)
  const int64_t Bt = o.batch, W = std::max<int64_t>(2, c.n_ctx / 2), steps = std::min<int64_t>(N, 256);
  auto batched = [&] {
    SingleThreaded pin;
    auto cache = m.model->make_cache(Bt, std::min<int64_t>(W, c.n_ctx), /*rolling=*/true, torch::kHalf);
    auto input = torch::randint(0, c.d_vocab_out, {Bt, 1}, torch::kInt64);
    const double t0 = now_s();
    for (int64_t i = 0; i < steps; ++i) m.model->forward(input, {nullptr, &cache});
    return Bt * steps / (now_s() - t0);
  };
  auto runc = [&]() -> double {
    std::string text;
    // run.c gets its own best environment: ccc's CLI sets OMP_WAIT_POLICY=PASSIVE for itself, which
    // makes run.c's OpenMP threads sleep between matmuls (measured 170 vs 530-670 tokens/s)
    const std::string cmd = "env -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT " + o.runc + " " + path + " -z " + (tok.empty() ? fs::path(path).parent_path().string() + "/tokenizer.bin" : tok) +
                            " -t 0 -n " + std::to_string(N) + " -i '' 2>&1 >/dev/null";
    CCC_CHECK(run_capture(cmd, &text) == 0, "bench decode: '", cmd, "' failed: ", text);
    std::smatch mt;
    CCC_CHECK(std::regex_search(text, mt, std::regex("achieved tok/s: ([0-9.]+)")), "bench decode: no tok/s from run.c: ", text);
    return std::stod(mt[1]);
  };
  double best1 = 0, best1s = 0, bestb = 0, bestc = 0;
  std::vector<int64_t> ids;
  greedy(&ids);  // warm-up (packs the weights)
  const int threads = model::decode_threads();
  for (int r = 0; r < o.reps; ++r) {
    progress("bench decode", r, o.reps);
    best1 = std::max(best1, greedy(nullptr));
    {
      model::ScopedDecodeThreads one(1);
      best1s = std::max(best1s, greedy(nullptr));
    }
    bestb = std::max(bestb, batched());
    if (!o.runc.empty()) bestc = std::max(bestc, runc());
  }
  progress("bench decode", o.reps, o.reps);
  const double roof = matmul_roofline_gflops(Bt, c.d_model, 3);
  const double g1 = best1 * (w_flops + attn_flops(N / 2.0)) / 1e9;
  const double gb = bestb * (w_flops + attn_flops(std::min<double>(W, steps) / 2.0)) / 1e9;
  char line[320];
  std::snprintf(line, sizeof line,
                "model %s: %.2fM params (%lld layers x %lld, %lld heads, vocab %lld, n_ctx %lld); best of %d "
                "interleaved reps; matmul roofline %.1f GFLOP/s (same run)\n\n",
                path.c_str(), c.n_params() / 1e6, (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads,
                (long long)c.d_vocab, (long long)c.n_ctx, o.reps, roof);
  out << line << "| run | tokens/s | GFLOP/s | % of roofline |\n|---|---|---|---|\n";
  std::snprintf(line, sizeof line, "| ccc B=1 greedy, %lld tokens (fp32 cache, as generate; %d decode threads) | %.0f | %.2f | %.1f%% |\n",
                (long long)N, threads, best1, g1, 100 * g1 / roof);
  out << line;
  const double g1s = best1s * (w_flops + attn_flops(N / 2.0)) / 1e9;
  std::snprintf(line, sizeof line, "| ccc B=1 greedy, %lld tokens, 1 decode thread | %.0f | %.2f | %.1f%% |\n",
                (long long)N, best1s, g1s, 100 * g1s / roof);
  out << line;
  if (!o.runc.empty()) {
    const double gc = bestc * (w_flops + attn_flops(N / 2.0)) / 1e9;
    std::snprintf(line, sizeof line, "| llama2.c run.c B=1, %lld tokens (baseline, same checkpoint) | %.0f | %.2f | %.1f%% |\n",
                  (long long)N, bestc, gc, 100 * gc / roof);
    out << line;
  }
  std::snprintf(line, sizeof line,
                "| ccc B=%lld, %lld steps (fp16 rolling cache W=%lld, single-threaded, as the compressor) | %.0f | %.2f | %.1f%% |\n",
                (long long)Bt, (long long)steps, (long long)W, bestb, gb, 100 * gb / roof);
  out << line;
  if (!o.runc.empty()) {
    std::snprintf(line, sizeof line, "\nccc B=1 / run.c: %.2fx\n", best1 / bestc);
    out << line;
  }
}

}  // namespace ccc::experiments
