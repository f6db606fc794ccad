#include "experiments/bench/bench_sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "circuits/sweep.h"
#include "experiments/support/common.h"
#include "model/base/util.h"
#include "model/scoring/streams.h"

namespace ccc::experiments {

using circuits::SweepPath;
using circuits::total_bits;

void bench_sweep(const BenchSweepOptions& o, std::ostream& out) {
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  std::string text;
  if (!o.file.empty()) {
    text = read_file(o.file);
  } else {
    for (const auto& [name, t] : held_out_sources(o.corpora_dir)) text += t.substr(0, std::min<size_t>(t.size(), 4096));
  }
  if (static_cast<int64_t>(text.size()) > o.bytes) text.resize(static_cast<size_t>(o.bytes));
  const circuits::ScoringRun run;  // zero ablation, the compressor's policy
  const auto set = circuits::sweep_set("heads", m.config);
  // interleaved: the naive baseline between the two batched paths
  auto timed = [&](SweepPath path, double* secs) {
    ProgressLine line("ablations", static_cast<int64_t>(set.size()));
    const auto t0 = std::chrono::steady_clock::now();
    auto bits = circuits::sweep_bits(m, text, run, set, nullptr, path, 256,
                                     [&](int64_t done, int64_t) { line.update(done); });
    *secs = seconds_since(t0);
    return bits;
  };
  double t_shared = 0, t_naive = 0, t_stacked = 0;
  const auto shared = timed(SweepPath::kShared, &t_shared);
  const auto naive = timed(SweepPath::kNaive, &t_naive);
  const auto stacked = timed(SweepPath::kStacked, &t_stacked);
  double diff_shared = 0, diff_stacked = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    diff_shared = std::max(diff_shared, std::abs(total_bits(shared[i]) - total_bits(naive[i])));
    diff_stacked = std::max(diff_stacked, std::abs(total_bits(stacked[i]) - total_bits(naive[i])));
  }
  char line[1024];
  std::snprintf(line, sizeof line,
                "bench sweep: %s, zero ablation of each of %zu heads, %zu bytes (%s)\n"
                "  %-52s %8.2f s  %5.2fx  max |delta_bits - naive| = %.2e bits\n"
                "  %-52s %8.2f s  %5.2fx  max |delta_bits - naive| = %.2e bits\n"
                "  %-52s %8.2f s  1.00x  (baseline)\n"
                "  targets: >= 5x, max difference <= 1e-3 bits per component\n",
                m.source.c_str(), set.size(), text.size(), model::describe_policy(m.config, {}).c_str(),
                "batched, upstream shared (blocks before a head once)", t_shared, t_naive / t_shared, diff_shared,
                "batched, stacked rows (every block per head)", t_stacked, t_naive / t_stacked, diff_stacked,
                "naive (one run per head)", t_naive);
  out << line;
}

}  // namespace ccc::experiments
