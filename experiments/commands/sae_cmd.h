#pragma once
// `ccc sae train DUMP.h5 --hook NAME -o SAE_DIR`: a sparse dictionary trained on one hook of an activation
// dump (analysis/sae.h), saved in SAELens' layout. `ccc sae eval -m M SAE_DIR FILE`: the dictionary spliced
// in at its hook while FILE is scored, in bits against the clean, zeroed and mean-replaced hook
// (analysis/sae_eval.h).

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::experiments {

struct SaeTrainCmdOptions {
  std::string dump, hook, out;
  std::string arch = "topk";
  int64_t expansion = 8, k = 32, steps = 1000, batch = 4096, buffer = 1 << 18, l1_warmup = 1000, resample_every = 0;
  double l1 = 5.0, lr = 4e-4;
  uint64_t seed = 0;
  bool force = false, progress = true;
  std::string command;
};

void run_sae_train(const SaeTrainCmdOptions& o);

/// `ccc sae sweep DUMP.h5 --hook H --eval FILE -o DIR`: the frontier, one dictionary per k (topk, batchtopk)
/// or L1 coefficient (relu), each evaluated in bits on FILE: frontier.csv, frontier.json, frontier.png and
/// each dictionary in DIR/<arch>-<value>/.
struct SaeSweepCmdOptions {
  SaeTrainCmdOptions train;  ///< dump, hook, out, and every training option but arch / k / l1
  std::string model, tokenizer, eval;
  std::vector<std::string> archs = {"topk"};
  std::vector<int64_t> ks = {8, 16, 32, 64};
  std::vector<double> l1s = {1, 3, 10};
  int64_t streams = 0, window = 0;
};
void run_sae_sweep(const SaeSweepCmdOptions& o);

struct SaeEvalCmdOptions {
  std::string model, tokenizer, sae, file;
  int64_t streams = 0, window = 0;
  bool strided = false, json = false;
};
void run_sae_eval(const SaeEvalCmdOptions& o);

}  // namespace ccc::experiments
