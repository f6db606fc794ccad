#pragma once
// `ccc train`, `ccc finetune`, `ccc eval` and `ccc bench train`: byte-level training runs and their reports.

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::experiments {

struct TrainCmdOptions {
  std::string config;        ///< training config JSON (data/configs/*.json)
  std::string corpora_dir;   ///< directory with <name>.txt files ("" = default)
  std::string out;           ///< output model directory
  bool resume = false;       ///< continue from out/resume
  bool force = false;        ///< replace an existing finished model in out
  int64_t max_steps = 0;     ///< stop early at this step (0 = config steps); resume later with --resume
  std::string init;          ///< start from this model's weights (same model config) instead of a random init
  uint64_t max_memory = 0;   ///< refuse a run whose estimate exceeds this (0 = the memory available)
  std::string command;       ///< the exact command line, recorded in the model card
};
void run_train(const TrainCmdOptions& o);

struct FinetuneCmdOptions {
  std::string model;         ///< model directory to start from
  std::string corpus;        ///< target corpus name
  std::string corpora_dir;
  std::vector<std::string> references;  ///< reference corpora ("" = all known corpora present)
  std::string params = "all";           ///< all | attn | mlp | layers:0,1 | glob list
  int64_t steps = 300;
  double lr = 3e-4;            ///< model::kFinetuneLr
  int64_t eval_bytes = 8192;   ///< held-out bytes per corpus before and after (model::kFinetuneEvalBytes; 0 = all)
  int64_t curve_points = 5;    ///< validation evaluations of the target during training
  bool quiet = false;
  int64_t batch_size = 16;
  int64_t seq_len = 0;  ///< 0 = model n_ctx
  uint64_t seed = 1;
  std::string out;
  bool force = false;
  uint64_t max_memory = 0;   ///< refuse a run whose estimate exceeds this (0 = the memory available)
  int64_t save_every = 0;    ///< keep OUT/checkpoints/step-N every N steps (0 = none)
  bool circuits = false;     ///< also the per-circuit table before / after (OUT/circuits.csv)
  std::string command;
};
void run_finetune(const FinetuneCmdOptions& o);

/// Held-out bits per byte of `model` on each corpus, printed as a table (and JSON with --json).
void run_eval(const std::string& model_path, const std::string& corpora_dir, std::vector<std::string> names, bool json,
              const std::string& tokenizer = "", bool quiet = false);

}  // namespace ccc::experiments
