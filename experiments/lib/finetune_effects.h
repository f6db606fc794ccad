#pragma once
// The `finetune` experiment: the trade-offs of domain fine-tuning explained by circuits. The default model is
// fine-tuned on one target corpus with several parameter subsets (all, attention only, MLP only, one layer),
// each along one seeded schedule whose snapshots at several step counts are kept; for the base and every
// snapshot, on the head of every corpus's held-out split:
//   held-out bits per byte (the trade-off: gained on the target, lost elsewhere, and their exchange rate);
//   the circuit table: Δbits per byte of mean-ablating each head and each MLP alone (reference: the domain
//   text itself, as `ccc sweep --mode mean`), and its shift after − before with a block-bootstrap CI.
// Whether circuit shift explains the trade-off: across (snapshot, component, domain) the correlation between
// a component's shift on a domain and that domain's change in bits, with a bootstrap CI over components and
// a permutation null (each snapshot's domain changes permuted across domains). Frozen parameters are checked
// bit-identical to the base.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "analysis/crosscoder.h"
#include "circuits/ablation.h"
#include "experiments/lib/result.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

/// Δbits per byte of ablating each component alone on each domain text, and the clean bits per byte.
/// Block sums (blocks of `block` tokens) are kept for bootstraps.
struct CircuitTable {
  std::vector<std::string> components, domains;
  std::vector<double> clean_bits_per_byte;                 ///< [domain]
  std::vector<std::vector<double>> delta_bits_per_byte;    ///< [component][domain]
  std::vector<std::vector<std::vector<double>>> block_delta;  ///< [component][domain][block]: Σ Δbits
  std::vector<std::vector<double>> block_bytes;             ///< [domain][block]
};

/// Scores every domain (name, text) clean and with each component ablated alone (mode mean or zero; mean's
/// reference is the domain text itself) under the compressor's segmentation (`streams`, 0 = automatic).
CircuitTable circuit_table(model::LoadedModel& m, const std::vector<std::pair<std::string, std::string>>& domains,
                           const std::vector<circuits::Component>& components, circuits::Mode mode, int64_t streams,
                           uint64_t seed, int64_t block = 64);

/// after − before per (component, domain) with a percentile block-bootstrap CI (the same blocks drawn for
/// both models: the texts and segmentation are the same). Throws ccc::Error when the tables differ in shape.
struct CircuitShift {
  std::vector<std::vector<double>> shift, ci_low, ci_high;  ///< [component][domain], bits per byte
};
CircuitShift circuit_shift(const CircuitTable& before, const CircuitTable& after, int64_t resamples, uint64_t seed);

struct FinetuneEffectsOptions {
  std::string target = "llamacpp-src";          ///< the corpus fine-tuned on
  std::vector<std::string> subsets = {"all", "attn", "mlp", "layers:2"};  ///< model::select_parameters specs
  std::vector<int64_t> steps = {50, 100, 200};  ///< snapshot step counts of each schedule (the last = its length)
  int64_t batch_size = 8, seq_len = 256;
  double lr = 3e-4;                             ///< model::kFinetuneLr
  uint64_t seed = 0;
  int64_t eval_bytes = 2048;                    ///< held-out bytes per corpus
  circuits::Mode mode = circuits::Mode::kMean;
  int64_t streams = 0;
  int64_t resamples = 1000, null_draws = 1000;
  std::string snapshot_dir;                     ///< where snapshots are kept (<subset>-<steps>/); "" = not kept
  /// Base vs the longest snapshot of the first subset ("all" by default): unit classes (ccc units' rules on
  /// every MLP's hook_post, the automatic features) on the held-out heads (units_bytes of each corpus), and
  /// a crosscoder trained on the training splits' heads (crosscoder_train_bytes of each) and evaluated on
  /// the held-out heads. 0 = left out.
  int64_t units_bytes = 1024, crosscoder_train_bytes = 8192;
  /// The competition experiment's winner shares on the target's held-out head (mechanism_bytes of it) and
  /// copy-vs-recall's switch point on the domains' held-out heads (copy_recall_positions positions), base vs
  /// the compared snapshot. 0 = left out.
  int64_t mechanism_bytes = 2048, copy_recall_positions = 24;
  analysis::CrosscoderOptions crosscoder;
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

struct FinetuneRun {
  std::string params;                   ///< the subset spec
  int64_t steps = 0;
  std::string model_dir, fingerprint;   ///< the snapshot (model_dir empty when not kept)
  int64_t trainable_tensors = 0, trainable_params = 0;
  double frozen_max_abs_diff = 0;       ///< over every frozen parameter against the base (0 = bit-identical)
  double train_seconds = 0, eval_seconds = 0;
  std::vector<double> delta_bits_per_byte;  ///< [domain] after − before (domain 0 = the target)
  double other_delta_mean = 0;          ///< mean of delta_bits_per_byte over the other domains
  double exchange_rate = 0;             ///< other_delta_mean / bits gained on the target (NaN when none gained)
  CircuitTable table;
  CircuitShift shift;
};

struct FinetuneEffectsDetail {
  std::vector<std::string> domains;     ///< the target first
  std::vector<std::string> components;
  CircuitTable base;
  std::vector<FinetuneRun> runs;
  double base_eval_seconds = 0;
  std::vector<double> null_correlations;
  std::string compared;  ///< the run compared with the base below ("all/200")
  std::map<std::string, int64_t> units_before, units_after, units_null_before, units_null_after;  ///< empty = not run
  int64_t units_rows = 0;
  /// competition winners on the target: (component, share of the tokens with a winner), base and after
  std::vector<std::pair<std::string, double>> winners_before, winners_after;
  std::vector<Measurement> switch_point;  ///< copy-vs-recall's switch point: base, then the compared snapshot
  double mechanism_seconds = 0;
  std::vector<std::string> mechanism_notes;  ///< why one of the two was not measured (e.g. a context too short)
  bool has_crosscoder = false;
  analysis::CrosscoderReport crosscoder;
  double units_seconds = 0, crosscoder_seconds = 0;
};

/// Unit classes of `m` on `text`: a capture of every MLP's hook_post during a compression run (written to
/// `h5`, replaced), the automatic features, analysis::analyze_units. `null` receives the shifted-label
/// classes; `rows` the rows analysed. Empty for attention-only models.
std::map<std::string, int64_t> unit_classes(model::LoadedModel& m, const std::string& text, const std::string& h5,
                                            std::map<std::string, int64_t>* null = nullptr, int64_t* rows = nullptr);

/// Fine-tunes the byte-level model in `base_dir` on o.target (a name in `corpora`) per subset and scores
/// every snapshot. The caller fills model / input identity. Throws ccc::Error for a target not among the
/// corpora, a subset that selects nothing, or steps not increasing.
Result run_finetune_effects(const std::string& base_dir, const std::vector<model::Corpus>& corpora, const FinetuneEffectsOptions& o,
                            FinetuneEffectsDetail* detail = nullptr);

/// Pearson correlation of two equal-length samples (NaN when either is constant).
double pearson(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace ccc::experiments
