#pragma once
// `ccc bench sae`: sparse-dictionary training throughput read from a dump (rows/s, rows per hour, GFLOP/s)
// beside the matmul roofline of the encoder's own shape and the dump's read rate, measured in the same run.

#include <cstdint>
#include <ostream>
#include <string>

namespace ccc::experiments {

struct BenchSaeOptions {
  std::string model, tokenizer;  ///< model of the made dump (default: the default model)
  std::string dump, hook;        ///< an existing dump and hook (default: a dump of the model's last mlp.hook_post)
  int64_t rows = 60000;          ///< rows of the made dump (held-out text)
  int64_t expansion = 8, k = 32, batch = 4096, steps = 12;
};
void bench_sae(const BenchSaeOptions& o, std::ostream& out);

}  // namespace ccc::experiments
