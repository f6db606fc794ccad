#pragma once
// `ccc experiment NAME`: runs one experiment of the experiment library (experiments/lib) and writes its
// result.json, CSVs of the raw measurements, plots and section.md into a directory (all or nothing).

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::experiments {

struct ExperimentCmdOptions {
  std::string name;              ///< the experiment (experiment_names())
  std::string model, tokenizer;  ///< "" = the default model
  std::string file;              ///< input text ("" = a held-out mix of the corpora present)
  std::string corpora_dir;
  std::string out;               ///< output directory
  std::string mode = "mean";     ///< ablation of the candidates (competition)
  std::string circuit;           ///< more candidates (a components list or JSON file)
  int64_t streams = 0;
  // copy-vs-recall (0 / empty / -1 = the experiment's default)
  int64_t positions = 0, null_draws = 0, top = 0, span = 0, filler = -1;
  double min_p = 0;
  std::vector<int64_t> repeats;
  std::vector<std::string> models;  ///< scaling, emergence: the family (default: the shipped ccc-byte-xs, -s, -m, -l)
  std::vector<std::string> runs;    ///< emergence: training run directories with checkpoints/ (-m, repeatable)
  // finetune (empty / 0 = the experiment's default)
  std::string corpus;               ///< the target corpus
  std::vector<std::string> params;  ///< parameter subsets (model::select_parameters specs)
  std::vector<int64_t> steps;       ///< snapshot step counts
  int64_t eval_bytes = 0;
  bool quick = false;            ///< tiny sizes (what the tests run), the same schema
  uint64_t seed = 0;
  bool force = false;
  bool progress = true;
  bool print = true;             ///< print section.md and the files written (a study prints only its summary)
  std::string command;
};

/// The experiments `ccc experiment` knows.
const char* experiment_names();

void run_experiment(const ExperimentCmdOptions& o);

}  // namespace ccc::experiments
