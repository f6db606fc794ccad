#pragma once
// `ccc bench sweep`: the batched ablation sweeps (shared upstream, stacked rows) against one run per head, same run, same bits.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchSweepOptions {
  std::string model, file, corpora_dir;
  std::string tokenizer;  ///< overrides discovery ("" = beside the model)
  int64_t bytes = 20000;
};
void bench_sweep(const BenchSweepOptions& o, std::ostream& out);

}  // namespace ccc::experiments
