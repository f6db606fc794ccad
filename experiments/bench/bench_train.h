#pragma once
// `ccc bench train`: training throughput (tokens/s, GFLOP/s) beside the matmul roofline of the same run.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchTrainOptions {
  std::string config;
  std::string corpora_dir;
  int64_t steps = 10;
};
void bench_train(const BenchTrainOptions& o);

}  // namespace ccc::experiments
