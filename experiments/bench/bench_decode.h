#pragma once
// `ccc bench decode`: the single-token decode step (what generation, the compressor and per-token sweeps
// run), timed next to its own baselines in the same run.

#include <cstdint>
#include <ostream>
#include <string>

namespace ccc::experiments {

struct BenchDecodeOptions {
  std::string tokenizer;  ///< overrides discovery (with -m)
  std::string model;      ///< "" = a random stories15M-shaped llama2.c checkpoint written by the bench
  int64_t tokens = 1000;  ///< greedy tokens of the B=1 run
  int64_t batch = 32;     ///< rows of the batched run
  int reps = 3;           ///< interleaved repetitions; the best is reported
  std::string runc;       ///< llama2.c `run` binary: timed on the same checkpoint as the baseline
};
/// B=1 greedy decoding tokens/s (fp32 cache, as `ccc generate`) and batched tokens/s (fp16 rolling cache,
/// as the compressor), with GFLOP/s next to the matmul roofline measured in the same run; with `runc`,
/// llama2.c's run.c on the same checkpoint and token count.
void bench_decode(const BenchDecodeOptions& opt, std::ostream& out);

}  // namespace ccc::experiments
