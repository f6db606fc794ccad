#pragma once
// Fine-tuning a trained byte-level model on one target corpus and pricing the trade-off: held-out bits per
// byte of the target and of every reference corpus before and after, and a validation curve of the target
// during training. What `ccc finetune` runs; the command saves the model and prints the table.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/core/transformer.h"
#include "model/training/corpus.h"
#include "model/training/trainer.h"

namespace ccc::model {

/// Default learning rate of a fine-tune: a converged model is near a minimum, where the pre-training peak
/// (3e-3) overshoots; chosen by the sweep in docs/training.md ("Fine-tuning").
inline constexpr double kFinetuneLr = 3e-4;
/// Default held-out bytes per corpus scored before and after (the head of each held-out split).
inline constexpr int64_t kFinetuneEvalBytes = 8192;

struct FinetuneOptions {
  TrainOptions train;          ///< steps, lr, batch, seq_len, seed; corpora and eval_every are set here
  int64_t eval_bytes = kFinetuneEvalBytes;  ///< held-out bytes per corpus (0 = the whole held-out split)
  int64_t curve_points = 5;    ///< validation evaluations of the target during training (besides step 0)
};

struct FinetuneCallbacks {
  std::function<void(const TrainEvent&)> on_step;
  /// Held-out evaluation: `phase` "before" / "after", bytes done of total.
  std::function<void(const std::string& phase, int64_t done, int64_t total)> on_eval;
};

/// Held-out bits per byte of each corpus on the head of its held-out split.
struct HeldOutBits {
  std::vector<std::string> corpora;
  std::vector<double> bits_per_byte;
  std::vector<int64_t> bytes;  ///< scored per corpus
  double of(const std::string& corpus) const;  ///< throws ccc::Error for a corpus not scored
};

struct FinetuneResult {
  HeldOutBits before, after;
  /// The target's validation bits per byte (Trainer::validation_bpb: fixed windows of its validation
  /// split) at step 0 and every steps / curve_points steps.
  std::vector<std::pair<int64_t, double>> curve;
  int64_t tokens_seen = 0;
  double target_delta() const;  ///< after − before on the target (negative = improved)
};

/// Held-out bits per byte of `corpora` (the first `max_bytes` of each held-out split; 0 = all).
HeldOutBits held_out_bits(Transformer& m, const std::vector<Corpus>& corpora, int64_t max_bytes,
                          const std::function<void(int64_t done, int64_t total)>& progress = {});

/// Trains `m` (in place) on `target` (a name in `corpora`) with only `trainable` updated (empty = all),
/// evaluating every corpus before and after. Throws ccc::Error when the target is not among `corpora` or
/// training stops on a non-finite loss.
FinetuneResult finetune(Transformer& m, const std::vector<Corpus>& corpora, const std::string& target,
                        const std::vector<std::string>& trainable, const FinetuneOptions& o,
                        const FinetuneCallbacks& cb = {});

}  // namespace ccc::model
