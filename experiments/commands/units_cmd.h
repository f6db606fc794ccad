#pragma once
// `ccc units` (unit statistics, selectivity and classes of a dump, with report and plots) and
// `ccc heldout` (the held-out text of several corpora in one file, with domain labels for `ccc units`).

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "analysis/labels.h"
#include "analysis/units.h"

namespace ccc::experiments {

/// Reads a labels CSV: header `feature,start,end` (byte offsets of the input, end exclusive) or
/// `feature,row_start,row_end` (dump rows); each line turns its range on for that feature (a feature may
/// have many lines). Throws naming the file and line on bad input.
std::vector<analysis::Feature> read_labels_csv(const std::string& path, const std::vector<int64_t>& byte_offsets);

struct UnitsCmdOptions {
  std::string tokenizer;              ///< overrides discovery for --ablate-top's model
  std::string dump, out_dir, source;  ///< source: the dumped text (default: the dump's `source` attribute)
  std::vector<std::string> features;  ///< NAME=REGEX
  std::vector<std::string> labels;    ///< CSV files
  analysis::UnitOptions units;
  int64_t ablate_top = 0;             ///< mean-ablate the K most selective units and report delta_bits
  std::string model;                  ///< for --ablate-top (default: the default model; fingerprint must match)
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
