#include "experiments/bench/bench_scale.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "circuits/sweep.h"
#include "compress/lm_codec.h"
#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

// The `ccc` launcher beside this binary (ccc-core).
std::string ccc_launcher() {
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  CCC_CHECK(n > 0, "bench scale-out: cannot find my own path");
  return (fs::path(std::string(self, static_cast<size_t>(n))).parent_path() / "ccc").string();
}

struct Timed {
  double seconds = 0;
  std::string output;
};

Timed timed(const std::string& cmd) {
  Timed t;
  const double t0 = now_s();
  const int rc = run_capture(cmd + " 2>&1", &t.output);
  t.seconds = now_s() - t0;
  CCC_CHECK(rc == 0, "bench scale-out: `", cmd, "` failed:\n", t.output);
  return t;
}

// The makespan of units with these costs on n ranks under dist::map's schedule (costliest first to the
// least loaded rank), as a share of the total cost.
double makespan_share(std::vector<double> cost, int n) {
  std::stable_sort(cost.begin(), cost.end(), [](double a, double b) { return a > b; });
  std::vector<double> load(static_cast<size_t>(n), 0.0);
  double total = 0;
  for (double c : cost) {
    *std::min_element(load.begin(), load.end()) += c;
    total += c;
  }
  return total > 0 ? *std::max_element(load.begin(), load.end()) / total : 1.0;
}

bool same_dump(const std::string& a_path, const std::string& b_path, std::string* why) {
  analysis::ActivationStore a(a_path), b(b_path);
  if (a.rows() != b.rows() || a.hooks() != b.hooks()) return *why = "rows or hooks differ", false;
  if (a.tokens() != b.tokens() || a.positions() != b.positions() || a.byte_offsets() != b.byte_offsets())
    return *why = "metadata differs", false;
  const auto ba = a.bits(), bb = b.bits();
  for (size_t i = 0; i < ba.size(); ++i)
    if (ba[i] != bb[i] && !(std::isnan(ba[i]) && std::isnan(bb[i]))) return *why = "bits differ", false;
  for (const auto& h : a.hooks()) {
    const float d = (a.block(h, 0, a.rows()) - b.block(h, 0, b.rows())).cwiseAbs().maxCoeff();
    if (d != 0) return *why = h + " differs by " + std::to_string(d), false;
  }
  return true;
}

}  // namespace

void bench_scale(const BenchScaleOptions& o, std::ostream& out) {
  CCC_CHECK(dist::built_with_mpi(), "bench scale-out: this ccc was built without MPI (install Open MPI and parallel "
            "HDF5 with ./setup.sh, which then builds the scale-out)");
  std::string ignored;
  CCC_CHECK(run_capture("command -v mpirun > /dev/null 2>&1", &ignored) == 0, "bench scale-out: mpirun is not on PATH");
  CCC_CHECK(o.ranks >= 2, "bench scale-out: --ranks must be at least 2");
  const fs::path tmp = o.tmp_dir.empty() ? fs::temp_directory_path() / ("ccc-bench-scale-" + std::to_string(::getpid()))
                                         : fs::path(o.tmp_dir);
  std::error_code ec;
  fs::create_directories(tmp, ec);
  CCC_CHECK(fs::is_directory(tmp, ec), "bench scale-out: cannot create ", tmp.string());
  const std::string model_path = o.model.empty() ? default_model_path() : o.model;
  auto m = model::load_model(model_path, o.tokenizer);
  const std::string input = bench_input(o.file, o.corpora_dir, o.bytes, "bench scale-out");
  const std::string in = (tmp / "input.txt").string();
  write_file_atomic(in, input);

  const std::string ccc = sh_quote(ccc_launcher()), R = std::to_string(o.ranks);
  const std::string mpirun = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -n " + R + " ";
  const std::string common = " -m " + sh_quote(model_path) + (o.tokenizer.empty() ? "" : " -t " + sh_quote(o.tokenizer)) +
                             " " + sh_quote(in) + " --streams " + std::to_string(o.streams);
  char line[512];
  std::snprintf(line, sizeof line,
                "bench scale-out: model %s, %zu bytes of %s, %lld streams; one process with --threads 1 vs mpirun -n %d "
                "(%d cores here; each rank 1 thread)\n",
                m.source.c_str(), input.size(), o.file.empty() ? "held-out corpora" : o.file.c_str(),
                (long long)o.streams, o.ranks, static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN))));
  out << line;

  // fixed per-rank cost: start-up and the model's load (every rank pays it)
  const Timed start = timed(ccc + " --threads 1 info -m " + sh_quote(model_path) + " > /dev/null");

  // 1. head sweep (ccc sweep's defaults: zero ablation, batched): the table must be identical
  const std::string sweep = " sweep" + common + " --over heads --json -f";
  const Timed s1 = timed(ccc + " --threads 1" + sweep + " --csv " + sh_quote((tmp / "sweep1.csv").string()));
  const Timed sN = timed(mpirun + ccc + sweep + " --csv " + sh_quote((tmp / "sweepN.csv").string()));
  // the machine's ceiling: R independent copies of the one-process run at once (no communication, no
  // shared work): R × T1 / T(copies) is the most any split of the work into R processes can gain here
  auto copies = [&](const std::string& cmd) {
    std::string all = "(";
    for (int r = 0; r < o.ranks; ++r) all += cmd + " > /dev/null & ";
    return timed(all + "wait)");
  };
  const Timed sC = copies(ccc + " --threads 1" + sweep);
  const bool sweep_same = read_file((tmp / "sweep1.csv").string()) == read_file((tmp / "sweepN.csv").string());
  const auto js = nlohmann::json::parse(sN.output.substr(sN.output.find('{')));
  circuits::ScoringRun run;
  run.streams = o.streams;
  const auto plan = circuits::plan_sweep(m, input, run, circuits::sweep_set("heads", m.config), circuits::SweepPath::kShared,
                                         256, /*clean=*/true);
  const double sweep_bytes = js.at("mpi_bytes").get<double>();

  // 2. dump of every residual and MLP hook: every dataset must be identical
  const std::string hooks = " --hooks 'blocks.*.hook_resid_post' --hooks 'blocks.*.mlp.hook_post'";
  const std::string dump = " dump" + common + hooks + " --force -o ";
  const Timed d1 = timed(ccc + " --threads 1" + dump + sh_quote((tmp / "dump1.h5").string()) + " --workers 1");
  const Timed dN = timed(mpirun + ccc + dump + sh_quote((tmp / "dumpN.h5").string()));
  std::string each;  // each copy its own file
  for (int r = 0; r < o.ranks; ++r)
    each += ccc + " --threads 1" + dump + sh_quote((tmp / ("dumpc" + std::to_string(r) + ".h5")).string()) + " --workers 1 > /dev/null & ";
  const Timed dC = timed("(" + each + "wait)");
  for (int r = 0; r < o.ranks; ++r) fs::remove(tmp / ("dumpc" + std::to_string(r) + ".h5"), ec);
  std::string why;
  const bool dump_same = same_dump((tmp / "dump1.h5").string(), (tmp / "dumpN.h5").string(), &why);
  model::StreamOptions sopt;
  sopt.streams = o.streams;
  const int64_t B = model::resolve_streams(input.size(), o.streams);
  const int64_t G = compress::auto_groups(m.config, model::resolve_window_policy(m.config, sopt).first, B);
  const double dump_bytes = static_cast<double>(fs::file_size(tmp / "dumpN.h5", ec));
  int64_t tokens = 0;
  for (uint64_t c : model::stream_token_counts(m, input, sopt)) tokens += static_cast<int64_t>(c);

  out << "\n  task        units   one process   " << R << " ranks   speedup  target  ceiling (" << R
      << " copies at once)   of ceiling  outputs\n";
  auto row = [&](const char* task, size_t units, double t1, double tn, double tc, bool same) {
    const double ceiling = o.ranks * t1 / tc;
    std::snprintf(line, sizeof line, "  %-10s %6zu   %9.2f s  %7.2f s   %6.2fx   1.80x  %6.2fx (%.2f s)          %5.0f%%    %s\n",
                  task, units, t1, tn, t1 / tn, ceiling, tc, 100.0 * (t1 / tn) / ceiling, same ? "identical" : "DIFFERENT");
    out << line;
  };
  row("head sweep", plan.cost.size(), s1.seconds, sN.seconds, sC.seconds, sweep_same);
  row("dump", static_cast<size_t>(G), d1.seconds, dN.seconds, dC.seconds, dump_same);
  out << "  (one process: --threads 1 (and --workers 1 for the dump); ranks: 1 thread each, bound to a core by mpirun;\n"
         "   the ceiling is what this machine gives R independent one-thread runs at once: shared caches and memory\n"
         "   bandwidth slow each copy down, which no division of the work escapes)\n";
  if (!dump_same) out << "  dump: " << why << "\n";
  std::snprintf(line, sizeof line, "  start-up + model load (every rank): %.2f s\n", start.seconds);
  out << line;

  // communication per unit of work
  const double comps = static_cast<double>(plan.units.size() > 0 ? js.at("components").size() : 0);
  std::snprintf(line, sizeof line,
                "\n  communication: head sweep %.0f bytes over %lld MPI calls (every component's per-token bits to every "
                "rank: %.0f bytes per component = %lld tokens x 8); dump: the group payloads (%lld groups) and 3 sums; its "
                "%.1f MB of rows go to the file by MPI-IO, %.0f bytes per token\n",
                sweep_bytes, (long long)js.at("mpi_calls").get<int64_t>(), comps > 0 ? sweep_bytes / (comps + 1) : 0.0,
                (long long)tokens, (long long)G, dump_bytes / 1e6, dump_bytes / std::max<int64_t>(1, tokens));
  out << line;

  // projection: T(N) = t0 + W · makespan_N + comm(N); W = T1 − t0; comm = allgather of V bytes:
  // V · (N − 1) / N / β + 2 ⌈log2 N⌉ α (sizes, then data); efficiency T1 / (N · T(N))
  const double a = o.alpha_us * 1e-6, b = o.beta_gbs * 1e9;
  auto project = [&](double t1, double t0, const std::vector<double>& cost, double volume, int n) {
    const double w = std::max(0.0, t1 - t0);
    const double comm = volume * (n - 1) / n / b + 2 * std::ceil(std::log2(n)) * a;
    const double tn = t0 + w * makespan_share(cost, n) + comm;
    return t1 / (n * tn);
  };
  const std::vector<double> groups(static_cast<size_t>(G), 1.0);
  out << "\n  projected efficiency (on paper): T(N) = t0 + (T1 - t0) x makespan_N + V (N - 1) / N / beta + 2 ceil(log2 N) "
         "alpha;\n  t0 = start-up + load measured above, makespan_N = the largest rank's share of the units under the "
         "schedule (sweep: costliest first; dump: groups round-robin),\n";
  std::snprintf(line, sizeof line, "  V = the bytes gathered (measured), alpha = %.1f us, beta = %.1f GB/s (a cluster "
                "interconnect; assumed, not measured)\n", o.alpha_us, o.beta_gbs);
  out << line;
  out << "  task          N=" << R << " (measured)   N=" << R << " (model)   N=16    N=64\n";
  auto proj_row = [&](const char* task, double t1, double tn, const std::vector<double>& cost, double volume) {
    std::snprintf(line, sizeof line, "  %-12s %10.2f        %8.2f     %5.2f   %5.2f\n", task, t1 / (o.ranks * tn),
                  project(t1, start.seconds, cost, volume, o.ranks), project(t1, start.seconds, cost, volume, 16),
                  project(t1, start.seconds, cost, volume, 64));
    out << line;
  };
  proj_row("head sweep", s1.seconds, sN.seconds, plan.cost, sweep_bytes);
  proj_row("dump", d1.seconds, dN.seconds, groups, 8.0 * static_cast<double>(G));
  out << "  (units bound the scaling: a sweep has one unit per pass plus the clean run, a dump one per stream group;\n"
         "   more ranks than units idle: longer inputs, more streams (--streams) or more groups (--groups) make more)\n";
  fs::remove_all(tmp, ec);
  CCC_CHECK(sweep_same && dump_same, "bench scale-out: the outputs differ between one process and ", o.ranks, " ranks");
}

}  // namespace ccc::experiments
