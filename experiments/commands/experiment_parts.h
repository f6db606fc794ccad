#pragma once
// Internal to `ccc experiment`: what the per-experiment renderers share (the input, number formatting, the
// measurements table, result.json). Each experiment's renderer lives in <name>_render.cpp and turns the
// library's Result and detail into files; it never recomputes a statistic.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/commands/experiment_cmd.h"
#include "experiments/lib/result.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

// The experiment's input: FILE, or the head of every present corpus's held-out split (`per_corpus` bytes
// each) with domain:<d> byte labels.
struct ExperimentInput {
  std::string name, text;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> labels;
};
ExperimentInput experiment_input(const ExperimentCmdOptions& o, size_t per_corpus);

std::string num(double x, int prec = 4);

/// The shipped family (data/models/ccc-byte-xs, -s, -m, -l) in size order, those present.
std::vector<std::string> shipped_family();

/// An experiment's progress callback: one ProgressLine per phase, "<what>: <phase>" (silent unless `enabled`
/// and stderr is a terminal).
std::function<void(const std::string& phase, int64_t done, int64_t total)> phase_progress(const std::string& what, bool enabled);

/// "| measurement | value (95% CI) | null (95% range) |" rows of every measurement.
std::string measurement_table(const Result& r);

/// The result.json body: the Result's fields with model and input identity filled in, plus the command,
/// quick flag and sizes; stamped as ccc.experiment/1.
nlohmann::json result_json(Result& r, const model::LoadedModel& m, const ExperimentInput& in, const ExperimentCmdOptions& o);

void run_competition_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m);
void run_copy_recall_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m);
void run_icl_circuit_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m);
void run_scaling_cmd(const ExperimentCmdOptions& o);
void run_emergence_cmd(const ExperimentCmdOptions& o);
void run_finetune_experiment_cmd(const ExperimentCmdOptions& o);

}  // namespace ccc::experiments
