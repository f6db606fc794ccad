#pragma once
// `ccc bench scale-out`: the MPI scale-out measured side by side in one run (docs/scale-out.md): a head
// sweep and an activation dump of the same held-out text, as one process with one thread and under
// `mpirun -n R` (one thread per rank), wall-clock time of the whole command (start-up included), the
// outputs checked identical, the communication volume per unit of work, and from the measured figures the
// projected parallel efficiency at 16 and 64 ranks under a stated model.

#include <cstdint>
#include <ostream>
#include <string>

namespace ccc::experiments {

struct BenchScaleOptions {
  std::string model;          ///< "" = default model
  std::string tokenizer;
  std::string file;           ///< input ("" = the held-out corpora, concatenated, first `bytes`)
  int64_t bytes = 32 << 10;  ///< start-up and the model load (every rank) weigh less on longer inputs
  int64_t streams = 16;       ///< the sweep's and the dump's streams (even: whole streams split evenly)
  int ranks = 2;
  std::string corpora_dir;
  std::string tmp_dir;        ///< "" = the system temp dir
  double alpha_us = 5.0;      ///< projection: per-message latency (µs)
  double beta_gbs = 10.0;     ///< projection: per-link bandwidth (GB/s)
};
void bench_scale(const BenchScaleOptions& o, std::ostream& out);

}  // namespace ccc::experiments
