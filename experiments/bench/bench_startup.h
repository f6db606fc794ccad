#pragma once
// `ccc bench startup`: start-up time of the command line (launcher help, LibTorch load, a model) as child processes.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchStartupOptions {
  int runs = 7;  ///< runs of each command (median and fastest reported)
};

/// Start-up time of the command line, each command run as a child process: `ccc --help` (the launcher's
/// help page, no LibTorch), `ccc --version` (LibTorch loaded, nothing else: the floor of every command that
/// computes), `ccc info` (plus the default model), next to the baseline `ccc-core --help` started directly
/// (it re-executes itself to set the OpenMP / OpenBLAS wait policies, as every command did before the launcher).
void bench_startup(const BenchStartupOptions& o, std::ostream& out);

}  // namespace ccc::experiments
