#pragma once
// Circuits priced in bits: per-token bits of the model with a circuit ablated, every component of a set
// ablated alone (a sweep, batched), and Δbits with a block-bootstrap CI. Every figure is bits under the
// compressor's segmentation and window policy (model/scoring/streams.h), so a Δbits here is what the
// ablated model's compressed file grows by.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/ablation.h"
#include "model/formats/loader.h"
#include "model/scoring/streams.h"

namespace ccc::circuits {

/// How an ablated run is scored: the ablation mode, the segmentation and window policy (0 = the
/// compressor's automatic choice) and the seed of resample draws.
struct ScoringRun {
  Mode mode = Mode::kZero;
  int64_t streams = 0, window = 0;
  uint64_t seed = 0;
  model::StreamOptions stream_options() const;  ///< streams and window; no hooks
};

/// Called as work completes: `done` of `total` units.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

/// Δbits of one component set against the clean run, from per-token bits.
struct DeltaStats {
  double clean_total_bits = 0, ablated_total_bits = 0, delta_bits = 0, delta_bits_per_byte = 0;
  double ci_low = 0, ci_high = 0;  ///< 95% block-bootstrap CI of delta_bits_per_byte
};
/// Block bootstrap over ~100 contiguous token blocks of the input (streams in order), seeded.
DeltaStats delta_stats(const std::vector<double>& clean, const std::vector<double>& ablated, int64_t n_bytes,
                       int64_t resamples, uint64_t seed);

/// The coded tokens a metric counts (a position mask): one flag per coded token, streams concatenated in
/// order (the order of ablated_bits and sweep_bits). `positions` tokens are on; `bytes` is the number of
/// input bytes they cover (per-byte figures divide by it).
struct TokenMask {
  std::vector<uint8_t> on;
  int64_t positions = 0, bytes = 0;
};
/// The tokens of `text` under `run`'s segmentation whose first byte is on in `byte_mask` (one flag per
/// byte of `text`); a token covers the bytes up to the next token of its stream.
TokenMask token_mask(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                     const std::vector<uint8_t>& byte_mask);
/// The entries of per-token `bits` that `mask` keeps, in order.
std::vector<double> masked(const std::vector<double>& bits, const TokenMask& mask);

/// Σ of per-token bits.
double total_bits(const std::vector<double>& bits);

/// Per-token bits (streams concatenated in order) of `m` on `text` with `circuit` ablated (empty = clean).
/// `observe`, when set, may add hooks to the run: read-only ones (progress) or an edit of every row (the
/// paired runs' swapped input, circuits/paired.h).
std::vector<double> ablated_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                 const std::vector<Component>& circuit, const Reference* ref,
                                 const std::function<void(model::HookSet&)>& observe = {});

/// How a sweep scores its ablations: kShared gives each component its own block of batch rows and runs the
/// blocks before a component's layer once for all (branches from the clean residual stream); kStacked
/// stacks the row blocks over whole forwards (every block recomputed per component); kNaive runs one
/// scoring per component. Models that do not roll (strided policy) always go one at a time.
enum class SweepPath { kShared, kStacked, kNaive };

/// The completed passes of a sweep kept in a file, so that a long sweep resumes where it stopped
/// (`ccc sweep --partial FILE`). Records are appended and fsynced after every round of passes (one per
/// rank); a record cut short by a kill is dropped on reading. `key` names what the results depend on
/// (model, text, mode, policy, reference, seed, component set): a file made under another key is refused.
/// Rank 0 writes the file; every rank reads it.
class SweepJournal {
 public:
  SweepJournal(std::string path, const std::string& key);
  const std::string* find(int64_t unit) const;  ///< a unit's packed results, or null
  void add(int64_t unit, const std::string& bytes);
  int64_t resumed() const { return resumed_; }  ///< units read from the file at construction
  void remove();                                 ///< the sweep is complete: the file goes
  const std::string& path() const { return path_; }

 private:
  std::string path_, key_;
  std::map<int64_t, std::string> units_;
  size_t valid_bytes_ = 0;  ///< the file's length up to its last whole record (0: nothing written yet)
  int64_t resumed_ = 0;
};

/// How sweep_bits splits its work: units (passes) of components computed together, fixed by the set, the
/// path and max_rows (never by the rank count), and each unit's estimated cost in copies of the streams ×
/// blocks run; with `clean`, one more cost, the clean run's, last. rows_per_copy = the stream count
/// (batched paths; 1 otherwise).
struct SweepPlan {
  std::vector<std::vector<size_t>> units;  ///< indices into the set
  std::vector<double> cost;
  int64_t rows_per_copy = 1;
};
SweepPlan plan_sweep(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                     const std::vector<Component>& set, SweepPath path, int64_t max_rows, bool clean);

/// Per-token bits with each component of `set` ablated alone, passes of at most `max_rows` batch rows;
/// `progress` counts components. `base`, when set, adds to every pass edits of all its rows (called with
/// the pass's hooks and rows per copy, e.g. circuits::install_input); a pass with a base edit cannot
/// branch from the clean run, so kShared then runs as kStacked.
/// Under mpirun the passes (whose composition never depends on the rank count) are split across the ranks
/// and every rank returns the whole result, identical to one process's (each pass to the least loaded
/// rank, costliest first: a pass costs its rows × the blocks it runs). With `journal`, passes already in
/// it are not run again and the others are added to it as they complete. With `clean`, the clean run's
/// per-token bits (ablated_bits with no circuit) are computed as one more unit of the same schedule.
std::vector<std::vector<double>> sweep_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                            const std::vector<Component>& set, const Reference* ref,
                                            SweepPath path = SweepPath::kShared, int64_t max_rows = 256,
                                            const ProgressFn& progress = {},
                                            const std::function<void(model::HookSet&, int64_t rows_per)>& base = {},
                                            SweepJournal* journal = nullptr, std::vector<double>* clean = nullptr);

/// Per-token bits with each circuit of `circuits` ablated (all its components together), one circuit per
/// block of batch rows over whole forwards, passes of at most `max_rows` rows (one scoring per circuit on
/// the strided policy); `progress` counts circuits. Under mpirun the passes are split across the ranks.
std::vector<std::vector<double>> circuits_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                               const std::vector<std::vector<Component>>& circuits,
                                               const Reference* ref, int64_t max_rows = 256,
                                               const ProgressFn& progress = {});

}  // namespace ccc::circuits
