#pragma once
// `ccc bench hooks`: what hooks cost on the decode step (the compressor's shape), next to no hooks in the
// same run.

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

}  // namespace ccc::experiments
