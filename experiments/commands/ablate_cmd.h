#pragma once
// `ccc ablate` (one circuit, Δbits with a block-bootstrap CI), `ccc sweep` (every component of a set,
// batched), `ccc attribute`, `ccc patch` and `ccc discover`: each parses its options, calls the circuits
// library (circuits/sweep.h, discovery.h, attribution.h, patching.h) and prints. Every figure is bits
// under the compressor's segmentation and window policy.

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/positions.h"
#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct AblationRun {
  std::string model, tokenizer, file;
  std::string mode = "zero";
  std::string reference;      ///< reference text for mean / resample ("" = the input)
  std::string corrupt;        ///< the corrupt text of mode corrupt and paired patching (same token length)
  int64_t streams = 0, window = 0;
  uint64_t seed = 0;
  int64_t bootstrap = 2000;   ///< bootstrap resamples of the CI
  bool progress = true;       ///< a progress line on a terminal (stderr)
  /// The positions Δbits counts (ablate, sweep, patch): --positions FEATURE, --positions-regex RE,
  /// --positions-labels FILE and their --exclude-… forms; empty = every coded token.
  analysis::PositionSpec positions;
  /// The library's scoring settings (mode parsed; throws ccc::Error on an unknown mode).
  circuits::ScoringRun scoring() const;
};

struct AblateCmdOptions {
  AblationRun run;
  std::string components;
  bool per_token = false, json = false;
};
void run_ablate(const AblateCmdOptions& o);

struct SweepCmdOptions {
  AblationRun run;
  std::string over = "heads";
  std::string csv, plot;
  bool naive = false, json = false;
  bool force = false;  ///< replace existing --csv / --plot files
  std::string partial;  ///< completed passes kept here as they finish; a rerun resumes from it (removed at the end)
};
void run_sweep(const SweepCmdOptions& o);

struct DiscoverCmdOptions {
  AblationRun run;
  double threshold = 0.01;  ///< τ: remove a component whose removal costs < τ bits per byte
  std::string method = "acdc";  ///< acdc (exact, sequential) or attribution (one estimate, one shot)
  bool edges = false;           ///< also price every edge between the circuit's components (path patching)
  std::string out;          ///< circuit JSON ("" = stdout only)
  bool json = false;
  bool force = false;       ///< replace an existing -o file
};
/// ACDC-style pruning on the bits metric (circuits::discover) and its report.
void run_discover(const DiscoverCmdOptions& o);

struct AttributeCmdOptions {
  AblationRun run;
  std::string over = "heads";
  int order = 2;       ///< 1: first-order estimate; 2: with the curvature term (circuits/attribution.h)
  bool check = false;  ///< also run the exact (batched) sweep and report Spearman rho
  bool json = false;
};
/// Attribution patching over a sweep set (see circuits/attribution.h).
void run_attribute(const AttributeCmdOptions& o);

struct PatchCmdOptions {
  AblationRun run;
  /// Path patching: one component each; receiver L.H, attnL, mlpL or logits.
  std::string sender, receiver = "logits";
  /// Paired activation patching (run.corrupt set, no sender): the components (-c) or a sweep set (--over).
  std::string components, over;
  std::string csv;     ///< paired: also write the table as CSV
  bool force = false;  ///< replace an existing --csv file
  bool per_token = false, json = false;
};
/// With a sender, path patching (circuits/patching.h): Δbits of the sender's effect through the receiver
/// only (the sender ablated by run.mode, corrupt included). Without one, paired clean / corrupt activation
/// patching (circuits/paired.h) of every component, both directions.
void run_patch(const PatchCmdOptions& o);

}  // namespace ccc::experiments
