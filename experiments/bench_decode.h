#pragma once
// `ccc bench hooks` and `ccc bench decode`: the single-token decode step (what generation, the compressor
// and per-token sweeps run), timed next to its own baselines in the same run.

#include <cstdint>
#include <ostream>
#include <string>

namespace ccc::experiments {

struct BenchHooksOptions {
  std::string model;    ///< "" = the default model
  std::string tokenizer;  ///< overrides discovery
  int64_t rows = 64;    ///< batch rows (a compressor group's shape)
  int64_t window = 0;   ///< rolling fp16 cache of W positions (0 = n_ctx / 2, the compressor's default)
  int64_t steps = 64;   ///< timed steps per repetition (after the cache is filled)
  int reps = 9;         ///< interleaved repetitions; the best is reported
};
/// Decode-step time with no hooks / a glob matching nothing / one observed site / every site observed /
/// a per-row sweep editor (HookSet::patch, row r zeroes head r mod H) / the same sweep as one row-restricted
/// editor per row; ratios against no hooks.
void bench_hooks(const BenchHooksOptions& opt, std::ostream& out);

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
