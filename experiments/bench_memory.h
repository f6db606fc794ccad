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

struct BenchStartupOptions {
  int runs = 7;  ///< runs of each command (median and fastest reported)
};

/// Start-up time of the command line, each command run as a child process: `ccc --help` (the launcher's
/// help page, no LibTorch), `ccc --version` (LibTorch loaded, nothing else: the floor of every command that
/// computes), `ccc info` (plus the default model), next to the baseline `ccc-core --help` started directly
/// (it re-executes itself to set the OpenMP / OpenBLAS wait policies, as every command did before the launcher).
void bench_startup(const BenchStartupOptions& o, std::ostream& out);

}  // namespace ccc::experiments
