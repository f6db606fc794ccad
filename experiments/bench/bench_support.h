#pragma once
// What the benchmarks share: the rooflines every throughput is set beside (measured in the same run), the
// compressor's single-threaded kernel settings, and small timing helpers.

#include <cstdint>
#include <string>

#include "model/core/transformer.h"
#include "model/kernels/blas_threads.h"
#include "model/kernels/parallel.h"

namespace ccc::experiments {

/// `x` printed with the printf format `f` (one double conversion), for tables and CSV cells.
std::string format_number(const char* f, double x);

/// A benchmark's input: `file` when given, else the held-out corpora of `corpora_dir` concatenated; the
/// first `bytes` of it. Throws ccc::Error naming `who` when it is empty.
std::string bench_input(const std::string& file, const std::string& corpora_dir, int64_t bytes, const char* who);

/// Seconds on the steady clock (for differences).
double now_s();

/// Matmul roofline: best GFLOP/s of fp32 GEMMs of the model's own shapes and a square 2048^3.
double matmul_roofline_gflops(int64_t rows, int64_t d_model, int reps);

/// Memory roofline: best GB/s of summing a 512 MiB fp32 tensor on every LibTorch thread (reads only; far
/// beyond any cache, so it is what streaming data from DRAM can reach on this machine).
double memory_read_gbps(int reps);

/// The compressor's kernel settings for the lifetime of the object: LibTorch intra-op threads 1, OpenBLAS 1,
/// decode helper threads 1; the previous settings restored after.
struct SingleThreaded {
  int prev;
  model::ScopedBlasThreads blas{1};
  model::ScopedDecodeThreads decode{1};
  SingleThreaded();
  ~SingleThreaded();
};

/// A deep copy of a KV cache (every timed repetition starts from the same filled cache).
model::KVCache clone_cache(const model::KVCache& c);

/// "NAME: repetition k of n" on a terminal's stderr (nothing when stderr is not a terminal).
void progress(const char* name, int done, int total);

}  // namespace ccc::experiments
