#pragma once
// ccc bench memory: peak RSS of compress / decompress as the input grows (streaming frames keep it flat).

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchMemoryOptions {
  std::string model;                  ///< "" = a 5K-parameter random byte model (measures the codec, not the model)
  std::vector<double> sizes_mb{1, 100};  ///< input sizes in MB (10^6 bytes); the first is the baseline
  uint64_t frame_bytes = 16u << 20;   ///< compress --frame-bytes
  std::string tmp_dir;                ///< "" = the system temp dir
  std::string tokenizer;              ///< passed on to the commands (with -m)
};

/// Runs compress, decompress and bits of each size as child processes (the real command line), checks the
/// round trip, and prints peak RSS and time next to the baseline size's.
void bench_memory(const BenchMemoryOptions& o, std::ostream& out);

}  // namespace ccc::experiments
