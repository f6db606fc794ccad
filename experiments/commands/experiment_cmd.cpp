#include "experiments/commands/experiment_cmd.h"
#include "experiments/commands/experiment_parts.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

ExperimentInput experiment_input(const ExperimentCmdOptions& o, size_t per_corpus) {
  ExperimentInput in;
  if (!o.file.empty()) {
    in.name = o.file;
    in.text = read_input(o.file);
    CCC_CHECK(!in.text.empty(), o.file, ": empty input");
    return in;
  }
  const std::string dir = corpora_dir_or_default(o.corpora_dir);
  const auto names = model::present_corpora(dir);
  CCC_CHECK(!names.empty(), "no corpus found in ", dir, " (run ./setup.sh, pass --corpora DIR, or give FILE)");
  const auto mix = model::held_out_mix(dir, names, per_corpus);
  in.text = mix.text;
  std::map<std::string, std::vector<uint8_t>> on;  // domain:<d> over every range of that domain
  for (const auto& r : mix.ranges) {
    auto& flags = on["domain:" + r.domain];
    flags.resize(in.text.size(), 0);
    std::fill(flags.begin() + static_cast<std::ptrdiff_t>(r.begin), flags.begin() + static_cast<std::ptrdiff_t>(r.end), 1);
  }
  for (auto& [label, flags] : on) in.labels.emplace_back(label, std::move(flags));
  in.name = "held-out mix (" + std::to_string(names.size()) + " corpora x " + std::to_string(per_corpus) + " bytes)";
  return in;
}

std::vector<std::string> shipped_family() {
  std::vector<std::string> out;
  for (const char* n : {"ccc-byte-xs", "ccc-byte-s", "ccc-byte-m", "ccc-byte-l"}) {
    const std::string p = std::string(CCC_SOURCE_DIR) + "/data/models/" + n;
    std::error_code ec;
    if (fs::exists(p + "/config.json", ec)) out.push_back(p);
  }
  return out;
}

std::string num(double x, int prec) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, x);
  return b;
}

std::function<void(const std::string&, int64_t, int64_t)> phase_progress(const std::string& what, bool enabled) {
  struct State {
    std::unique_ptr<ProgressLine> line;
    std::string phase;
  };
  auto st = std::make_shared<State>();
  return [st, what, enabled](const std::string& phase, int64_t done, int64_t total) {
    if (!st->line || phase != st->phase) st->line = std::make_unique<ProgressLine>(what + ": " + phase, total, enabled), st->phase = phase;
    st->line->update(done);
  };
}

std::string measurement_table(const Result& r) {
  std::ostringstream md;
  md << "| measurement | value (95% CI) | null (95% range) |\n|---|---|---|\n";
  for (const auto& m : r.measurements) {
    md << "| " << m.name << " | " << num(m.value) << " [" << num(m.ci_low) << ", " << num(m.ci_high) << "] | ";
    for (const auto& n : r.null)
      if (n.name == m.name) md << num(n.value) << " [" << num(n.ci_low) << ", " << num(n.ci_high) << "]";
    md << " |\n";
  }
  return md.str();
}

nlohmann::json result_json(Result& r, const model::LoadedModel& m, const ExperimentInput& in, const ExperimentCmdOptions& o) {
  r.model = m.source;
  r.model_fingerprint = m.fingerprint;
  r.input = in.name;
  r.input_sha256 = sha256_hex(in.text);
  nlohmann::json j = r.to_json();
  j["quick"] = o.quick;
  j["mode"] = o.mode;
  j["n_bytes"] = in.text.size();
  j["command"] = o.command;
  stamp(j, "experiment");
  return j;
}

const char* experiment_names() { return "competition, copy-vs-recall, icl, scaling, emergence, finetune"; }

void run_experiment(const ExperimentCmdOptions& o) {
  CCC_CHECK(o.name == "competition" || o.name == "copy-vs-recall" || o.name == "icl" || o.name == "scaling" || o.name == "emergence" ||
                o.name == "finetune",
            "experiment ", o.name, ": unknown (known: ", experiment_names(), ")");
  CCC_CHECK(o.runs.empty() || o.name == "emergence", "experiment ", o.name, ": takes one model (-m once); several -m are emergence's runs");
  CCC_CHECK(!o.out.empty(), "experiment: -o DIR is required");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  if (o.name == "scaling") return run_scaling_cmd(o);  // a family of models
  if (o.name == "emergence") return run_emergence_cmd(o);  // series of checkpoints and sizes
  if (o.name == "finetune") return run_finetune_experiment_cmd(o);  // trains its own copies of the model
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  if (o.name == "competition") run_competition_cmd(o, m);
  else if (o.name == "copy-vs-recall") run_copy_recall_cmd(o, m);
  else run_icl_circuit_cmd(o, m);
}

}  // namespace ccc::experiments
