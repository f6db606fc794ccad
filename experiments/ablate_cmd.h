#pragma once
// `ccc ablate` (one circuit, Δbits with a block-bootstrap CI), `ccc sweep` (every component of a set,
// batched: one batch row per component) and `ccc bench sweep` (batched vs one run per component).
// Every figure is bits under the compressor's segmentation and window policy.

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct AblationRun {
  std::string model, tokenizer, file;
  std::string mode = "zero";
  std::string reference;      ///< reference text for mean / resample ("" = the input)
  int64_t streams = 0, window = 0;
  uint64_t seed = 0;
  int64_t bootstrap = 2000;   ///< bootstrap resamples of the CI
  bool progress = true;       ///< a progress line on a terminal (stderr)
};

/// Δbits of one component set against the clean run, from per-token bits.
struct DeltaStats {
  double clean_total_bits = 0, ablated_total_bits = 0, delta_bits = 0, delta_bits_per_byte = 0;
  double ci_low = 0, ci_high = 0;  ///< 95% block-bootstrap CI of delta_bits_per_byte
};
/// Block bootstrap over ~100 contiguous token blocks of the input (streams in order), seeded.
DeltaStats delta_stats(const std::vector<double>& clean, const std::vector<double>& ablated, int64_t n_bytes,
                       int64_t resamples, uint64_t seed);

class RunProgress;
/// Per-token bits (streams concatenated in order) of `m` on `text` with `circuit` ablated (empty = clean);
/// `progress` (optional) observes the run's tokens.
std::vector<double> ablated_bits(model::LoadedModel& m, std::string_view text, const AblationRun& run,
                                 const std::vector<circuits::Component>& circuit, const circuits::Reference* ref,
                                 RunProgress* progress = nullptr);

/// How a sweep scores its ablations: kShared gives each component its own block of batch rows and runs the
/// blocks before a component's layer once for all (branches from the clean residual stream); kStacked
/// stacks the row blocks over whole forwards (every block recomputed per component); kNaive runs one
/// scoring per component. Models that do not roll (strided policy) always go one at a time.
enum class SweepPath { kShared, kStacked, kNaive };

/// Per-token bits with each component of `set` ablated alone, passes of at most `max_rows` batch rows.
std::vector<std::vector<double>> sweep_bits(model::LoadedModel& m, std::string_view text, const AblationRun& run,
                                            const std::vector<circuits::Component>& set, const circuits::Reference* ref,
                                            SweepPath path = SweepPath::kShared, int64_t max_rows = 256);

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
};
void run_sweep(const SweepCmdOptions& o);

struct DiscoverCmdOptions {
  AblationRun run;
  double threshold = 0.01;  ///< τ: remove a component whose removal costs < τ bits per byte
  std::string method = "acdc";  ///< acdc (exact, sequential) or attribution (one estimate, one shot)
  bool edges = false;           ///< also price every edge between the circuit's components (path patching)
  std::string out;          ///< circuit JSON ("" = stdout only)
  bool json = false;
};
/// ACDC-style pruning on the bits metric (Conmy et al. 2023), node level: from the full model, remove heads
/// and MLPs in reverse topological order (last layer first, MLP before its layer's heads) whenever the
/// removal, on top of the ones kept removed, costs < τ bits per byte of the input. Method attribution:
/// every candidate whose second-order attribution estimate (circuits/attribution.h, at the full model) is
/// < τ bits per byte is removed at once — one forward + backward instead of one scoring per candidate;
/// the circuit's faithfulness is still scored exactly.
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
  std::string sender, receiver = "logits";  ///< one component each; receiver L.H, attnL, mlpL or logits
  bool per_token = false, json = false;
};
/// Path patching (circuits/patching.h): Δbits of the sender's effect through the receiver only.
void run_patch(const PatchCmdOptions& o);

struct BenchSweepOptions {
  std::string model, file, corpora_dir;
  std::string tokenizer;  ///< overrides discovery ("" = beside the model)
  int64_t bytes = 20000;
};
void bench_sweep(const BenchSweepOptions& o, std::ostream& out);

}  // namespace ccc::experiments
