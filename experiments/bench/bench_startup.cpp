#include "experiments/bench/bench_startup.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "experiments/bench/bench_memory.h"
#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/transformer.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

void bench_startup(const BenchStartupOptions& o, std::ostream& out) {
  CCC_CHECK(o.runs >= 1 && o.runs <= 1000, "bench startup: --runs must be in [1, 1000]");
  const fs::path core = fs::read_symlink("/proc/self/exe");
  const std::string launcher = (core.parent_path() / "ccc").string();
  CCC_CHECK(fs::exists(launcher), "bench startup: no launcher beside ", core.string(), " (", launcher, ")");
  struct Case {
    std::string name, what;
    std::vector<std::string> args;
  };
  const std::vector<Case> cases = {
      {"ccc --help", "launcher only: a help page, no LibTorch", {launcher, "--help"}},
      {"ccc compress --help", "launcher only", {launcher, "compress", "--help"}},
      {"ccc --version", "LibTorch loaded, nothing else", {launcher, "--version"}},
      {"ccc info", "LibTorch + the default model", {launcher, "info"}},
      {"ccc-core --help (baseline)", "started directly: re-executes itself",
       {"/usr/bin/env", "-u", "OMP_WAIT_POLICY", "-u", "OPENBLAS_THREAD_TIMEOUT", core.string(), "--help"}},
  };
  out << "start-up, " << o.runs << " runs of each command (child processes, standard output discarded)\n\n"
      << "| command | what it loads | median s | fastest s |\n|---|---|---|---|\n";
  ProgressLine progress("bench startup (runs)", static_cast<int64_t>(cases.size()) * o.runs);
  int64_t done = 0;
  char line[512];
  for (const auto& c : cases) {
    std::vector<double> t;
    for (int r = 0; r < o.runs; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      CCC_CHECK(child_peak_rss_mib(c.args) > 0, "bench startup: `", c.name, "` failed");
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      progress.update(++done);
    }
    std::sort(t.begin(), t.end());
    std::snprintf(line, sizeof line, "| %s | %s | %.3f | %.3f |\n", c.name.c_str(), c.what.c_str(), t[t.size() / 2], t[0]);
    out << line << std::flush;
  }
}

}  // namespace ccc::experiments
