#include "experiments/bench/bench_support.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include <torch/torch.h>

#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::experiments {

std::string format_number(const char* f, double x) {
  char b[64];
  std::snprintf(b, sizeof b, f, x);
  return b;
}

std::string bench_input(const std::string& file, const std::string& corpora_dir, int64_t bytes, const char* who) {
  std::string input;
  if (!file.empty()) {
    input = read_file(file);
  } else {
    for (const auto& [name, text] : held_out_sources(corpora_dir)) input += text;
  }
  if (static_cast<int64_t>(input.size()) > bytes) input.resize(static_cast<size_t>(bytes));
  CCC_CHECK(!input.empty(), who, ": empty input");
  return input;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double matmul_roofline_gflops(int64_t rows, int64_t d_model, int reps) {
  torch::InferenceMode guard;
  double best = 0;
  const std::vector<std::array<int64_t, 3>> shapes = {{rows, d_model, 4 * d_model}, {rows, 4 * d_model, d_model},
                                                      {2048, 2048, 2048}};
  for (const auto& s : shapes) {
    auto a = torch::randn({s[0], s[1]});
    auto b = torch::randn({s[2], s[1]});
    torch::nn::functional::linear(a, b);  // warm-up
    for (int r = 0; r < reps; ++r) {
      double t0 = now_s();
      auto c = torch::nn::functional::linear(a, b);
      double dt = now_s() - t0;
      best = std::max(best, 2.0 * s[0] * s[1] * s[2] / dt / 1e9);
    }
  }
  return best;
}

double memory_read_gbps(int reps) {
  torch::InferenceMode guard;
  auto a = torch::ones({int64_t{128} << 20});  // 512 MiB
  double best = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first pass faults the pages in and is not counted
    const double t0 = now_s();
    const double s = a.sum().item<double>();
    const double dt = now_s() - t0;
    if (s != static_cast<double>(a.numel())) throw std::runtime_error("memory_read_gbps: wrong sum");
    if (r > 0) best = std::max(best, static_cast<double>(a.numel()) * 4.0 / dt / 1e9);
  }
  return best;
}

SingleThreaded::SingleThreaded() : prev(torch::get_num_threads()) { torch::set_num_threads(1); }

SingleThreaded::~SingleThreaded() { torch::set_num_threads(prev); }

model::KVCache clone_cache(const model::KVCache& c) {
  model::KVCache out = c;
  for (auto& t : out.k) t = t.clone();
  for (auto& t : out.v) t = t.clone();
  return out;
}

// "NAME: repetition k of n" on a terminal's stderr (nothing when stderr is not a terminal).
void progress(const char* name, int done, int total) {
  if (!::isatty(2)) return;
  if (done < total)
    std::fprintf(stderr, "\r%s: repetition %d of %d ", name, done + 1, total);
  else
    std::fprintf(stderr, "\r%s: done%20s\n", name, "");
}

}  // namespace ccc::experiments
