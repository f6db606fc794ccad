#pragma once
// `ccc bench forward`: prefill throughput of a GPT-2-small-shaped random model next to a plain fp32
// matmul roofline measured in the same run, and hook overhead ratios.

#include <cstdint>
#include <ostream>

namespace ccc::experiments {

struct BenchForwardOptions {
  int64_t batch = 8;
  int64_t pos = 512;
  int64_t n_layers = 12;
  int64_t d_model = 768;
  int64_t n_heads = 12;
  int64_t d_vocab = 50257;
  int reps = 3;  ///< timed repetitions per variant (best is reported), variants interleaved
};

/// Matmul roofline: best GFLOP/s of fp32 GEMMs of the model's own shapes and a square 2048^3.
double matmul_roofline_gflops(int64_t rows, int64_t d_model, int reps);

/// Memory roofline: best GB/s of summing a 512 MiB fp32 tensor on every LibTorch thread (reads only; far
/// beyond any cache, so it is what streaming data from DRAM can reach on this machine).
double memory_read_gbps(int reps);

void bench_forward(const BenchForwardOptions& opt, std::ostream& out);

}  // namespace ccc::experiments
