#pragma once
// In-context learning measured in bits (`ccc icl`) and the emergence of induction over training
// checkpoints (`ccc heads --checkpoints`).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuits/icl.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

using circuits::Source;

struct IclCmdOptions {
  std::string model, tokenizer, file, corpora_dir;
  circuits::IclOptions icl;
  bool json = false;
  std::string plot;  ///< PNG of bits vs position ("" = none)
  bool force = false;  ///< replace an existing --plot file
};
void run_icl(const IclCmdOptions& o);

struct MakeProbeCmdOptions {
  std::string out, fresh_out;  ///< the repeated text; its matched no-repeat text ("" = OUT with -norep)
  std::string corrupt_out;     ///< the paired-patching corrupt text ("" = OUT with -corrupt)
  int64_t len = 50, strings = 40;
  uint64_t seed = 0;
  bool force = false;
};
/// `ccc make-probe`: circuits::make_probe written to three files (all complete before any appears).
void run_make_probe(const MakeProbeCmdOptions& o);

struct HeadsCmdOptions {
  std::string model, tokenizer;
  int64_t seq_len = 50, batch = 8;
  uint64_t seed = 0;
  bool json = false;
  std::string plot_dir;     ///< heatmaps heads_<score>.png ("" = none)
  bool force = false;       ///< replace existing heatmaps
  std::string checkpoints;  ///< training run directory with checkpoints/step-N: emergence mode
  std::string out;          ///< emergence CSV (PNG beside it); default RUN/emergence.csv
  std::string corpora_dir;
};
void run_heads(const HeadsCmdOptions& o);

}  // namespace ccc::experiments
