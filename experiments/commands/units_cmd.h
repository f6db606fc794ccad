#pragma once
// `ccc units` (unit statistics, selectivity and classes of a dump, with report and plots) and
// `ccc heldout` (the held-out text of several corpora in one file, with domain labels for `ccc units`).

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "analysis/labels.h"
#include "analysis/positions.h"
#include "analysis/units.h"

namespace ccc::experiments {

using analysis::read_labels_csv;  // analysis/labels.h

struct UnitsCmdOptions {
  std::string tokenizer;              ///< overrides discovery for --ablate-top's model
  std::string dump, out_dir, source;  ///< source: the dumped text (default: the dump's `source` attribute)
  std::vector<std::string> features;  ///< NAME=REGEX
  std::vector<std::string> labels;    ///< CSV files
  analysis::UnitOptions units;
  int64_t ablate_top = 0;             ///< mean-ablate the K most selective units and report delta_bits
  analysis::PositionSpec ablate_positions;  ///< the positions --ablate-top's delta_bits counts (empty = all)
  std::string model;                  ///< for --ablate-top (default: the default model; fingerprint must match)
  std::string sae;                    ///< a dictionary (ccc sae train): its features analysed beside its hook's units
  bool force = false;
  bool quiet = false;
  uint64_t max_memory = 0;            ///< refuse an analysis whose estimate exceeds this (0 = the memory available)
};
void run_units(const UnitsCmdOptions& o);

struct HeldoutCmdOptions {
  std::string out, corpora_dir;
  std::vector<std::string> corpora;  ///< empty = every present corpus
  int64_t bytes = 20000;             ///< per corpus, from the start of its held-out split
  bool force = false;
};
void run_heldout(const HeldoutCmdOptions& o);

}  // namespace ccc::experiments
