#include "experiments/commands/study_cmd.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "experiments/commands/experiment_cmd.h"
#include "experiments/commands/report_cmd.h"
#include "experiments/support/common.h"
#include "model/base/error.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

void run_study(const StudyCmdOptions& o) {
  CCC_CHECK(!o.out.empty(), "study: -o DIR is required");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  const std::vector<std::string> all = {"copy-vs-recall", "competition", "icl", "scaling", "emergence", "finetune"};
  for (const auto& e : o.experiments)
    CCC_CHECK(std::find(all.begin(), all.end(), e) != all.end(), "study: unknown experiment ", e, " (known: copy-vs-recall, "
              "competition, icl, scaling, emergence, finetune)");
  const std::string models = std::string(CCC_SOURCE_DIR) + "/data/models/";
  // (experiment, model directory or "" for the default / the family, run name)
  struct Run {
    std::string experiment, model, name;
  };
  std::vector<Run> runs;
  auto want = [&](const std::string& e) {
    return o.experiments.empty() || std::find(o.experiments.begin(), o.experiments.end(), e) != o.experiments.end();
  };
  if (want("copy-vs-recall")) {
    runs.push_back({"copy-vs-recall", "", "copy-vs-recall-default"});
    if (!o.default_only) runs.push_back({"copy-vs-recall", models + "ccc-byte-l-icl", "copy-vs-recall-ccc-byte-l-icl"});
  }
  if (want("competition")) {
    runs.push_back({"competition", "", "competition-default"});
    if (!o.default_only) runs.push_back({"competition", models + "ccc-byte-s", "competition-ccc-byte-s"});
  }
  if (want("icl")) {
    runs.push_back({"icl", "", "icl-default"});
    if (!o.default_only) runs.push_back({"icl", models + "ccc-attn2", "icl-ccc-attn2"});
  }
  if (want("scaling") && !o.default_only) runs.push_back({"scaling", "", "scaling-family"});
  if (want("emergence") && !o.default_only) runs.push_back({"emergence", "", "emergence-checkpoints"});
  if (want("finetune")) runs.push_back({"finetune", "", "finetune-default"});
  CCC_CHECK(!runs.empty(), "study: nothing to run (scaling and emergence need the family and checkpoint series, which "
            "--default-only leaves out)");
  fs::create_directories(o.out, ec);
  CCC_CHECK(!ec, o.out, ": cannot create the directory (", ec.message(), ")");
  std::vector<std::string> dirs;
  std::vector<std::pair<std::string, double>> times;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    if (o.progress)
      std::fprintf(stderr, "\nstudy [%zu/%zu]: %s on %s%s\n", i + 1, runs.size(), r.experiment.c_str(),
                   r.model.empty() ? (r.experiment == "scaling" ? "the family" : r.experiment == "emergence" ? "the organism's checkpoints and the family" : "the default model") : fs::path(r.model).filename().c_str(),
                   o.quick ? " (quick)" : "");
    ExperimentCmdOptions e;
    e.name = r.experiment;
    e.model = r.model;
    e.quick = o.quick;
    e.seed = o.seed;
    e.corpora_dir = o.corpora_dir;
    e.out = (fs::path(o.out) / r.name).string();
    e.force = true;
    e.progress = o.progress;
    e.print = false;
    e.command = o.command;
    const auto t0 = std::chrono::steady_clock::now();
    run_experiment(e);
    times.emplace_back(r.name, seconds_since(t0));
    dirs.push_back(e.out);
  }
  ReportCmdOptions rep;
  rep.dirs = dirs;
  rep.out = (fs::path(o.out) / "report").string();
  rep.force = true;
  const std::string summary = run_report(rep, false);
  std::printf("\nstudy: wall time per experiment\n");
  for (const auto& [name, s] : times) std::printf("  %-34s %7.1f s\n", name.c_str(), s);
  std::printf("\n%s\nreport: %s\n", summary.c_str(), fs::absolute(fs::path(rep.out) / "report.html").c_str());
}

}  // namespace ccc::experiments
