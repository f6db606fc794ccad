#pragma once
// Training byte-level models: AdamW, linear warmup + cosine decay, gradient clipping and accumulation,
// seeded data sampling that depends only on (seed, step) so a resumed run equals an uninterrupted one.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/core/config.h"
#include "model/training/corpus.h"
#include "model/core/transformer.h"

namespace ccc::model {

struct TrainOptions {
  int64_t batch_size = 16;   ///< sequences per micro-batch
  int64_t seq_len = 256;     ///< predicted bytes per sequence (<= n_ctx)
  int64_t grad_accum = 1;    ///< micro-batches per optimizer step
  int64_t steps = 1000;
  int64_t warmup_steps = 100;
  double lr = 3e-3;
  double min_lr = 3e-4;      ///< cosine floor
  double weight_decay = 0.1; ///< on matrices only (not biases, norms)
  double beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;    ///< max global grad norm; 0 = off
  double bos_prob = 1.0 / 16;  ///< chance a sequence starts with BOS (texts also start that way when scored)
  uint64_t seed = 1;         ///< init and data sampling
  int64_t eval_every = 100;  ///< validation bpb interval in steps; 0 = only at the end
  int64_t eval_windows = 32; ///< validation windows per corpus (evenly spaced, fixed)
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;  ///< keep a model snapshot every K steps (training dynamics); 0 = off
  std::string save_dtype = "f16";  ///< "f16" | "f32" for the final model
  std::vector<std::string> corpora;  ///< corpus names (files <name>.txt in the corpus directory)
  // Data augmentation of training windows (seeded by (seed, step, micro, row); validation and held-out
  // evaluation always read unmodified text). Each applies to a window with its probability:
  double synthetic_prob = 0;            ///< window = random printable strings (32..126), each repeated
  std::vector<int64_t> synthetic_len{20, 40};     ///< [min, max] length of each random string
  std::vector<int64_t> synthetic_repeats{3, 6};   ///< [min, max] copies of each string, back to back
  /// [min, max] distinct bytes per random string (each string draws its size, then that many distinct
  /// printable bytes): small alphabets make one-byte matches ambiguous, so copying them needs longer
  /// prefixes. [95, 95], every printable byte, draws nothing extra (the windows sampled before the option).
  std::vector<int64_t> synthetic_alphabet{95, 95};
  double copy_prob = 0;                 ///< (natural windows) a span of the window is copied to a later place in it
  std::vector<int64_t> copy_len{16, 128};         ///< [min, max] length of the copied span (capped at seq_len / 2)
  std::vector<int64_t> copy_count{1, 1};          ///< [min, max] copied spans in a window that gets copies
  double crlf_prob = 0;                 ///< (natural windows) every LF of the window becomes CR LF

  void validate(const ModelConfig& cfg) const;
  nlohmann::json to_json() const;
  /// Reads the "train" object of a config file; unknown keys are errors (typos must not pass silently).
  static TrainOptions from_json(const nlohmann::json& j, const std::string& source);
};

/// A training config file: {"model": {ModelConfig}, "train": {TrainOptions}}.
struct TrainConfigFile {
  ModelConfig model;
  TrainOptions train;
  static TrainConfigFile load(const std::string& path);
};

/// Estimated peak memory of a training run, in bytes, from its shapes: f32 weights, gradients and AdamW's
/// two moments of `trainable` parameters (all when < 0), the activations one micro-batch keeps for the
/// backward pass (per layer: residual-stream tensors, MLP tensors, attention scores and probabilities; the
/// logits with their softmax and gradient), or the validation forward of eval_windows windows if larger,
/// plus LibTorch's own footprint. Checked against the memory available before a run starts (measured peaks
/// against this estimate: docs/limits.md).
uint64_t training_memory_bytes(const ModelConfig& c, const TrainOptions& o, int64_t trainable = -1);

/// Learning rate at `step` (0-based): linear warmup to lr, then cosine to min_lr at `steps`.
double lr_at(const TrainOptions& o, int64_t step);

/// One logged point.
struct TrainEvent {
  int64_t step = 0;
  int64_t tokens = 0;          ///< predicted tokens so far
  double train_bpb = 0;        ///< mean loss of this step in bits per byte
  double val_bpb = -1;         ///< validation bits per byte when evaluated at this step, else -1
  double lr = 0;
  double grad_norm = 0;
  double elapsed_s = 0;
  double tokens_per_s = 0;
};

class Trainer {
 public:
  /// `trainable`: canonical parameter names to update (empty = all); the rest are frozen bit-exactly.
  Trainer(Transformer model, TrainOptions opt, std::vector<Corpus> corpora, std::vector<std::string> trainable = {});

  /// Runs optimizer steps until `step() == until` (or opt.steps). `on_event` sees every step.
  void run(int64_t until, const std::function<void(const TrainEvent&)>& on_event = {});
  /// Mean bits per byte over the fixed validation windows of every corpus.
  double validation_bpb();

  int64_t step() const { return step_; }
  int64_t tokens_seen() const { return tokens_; }
  Transformer& model() { return model_; }
  const std::vector<Corpus>& corpora() const { return corpora_; }

  /// Saves weights (fp32), optimizer moments and the step to `dir` (written atomically per file).
  void save_state(const std::string& dir) const;
  /// Restores what save_state wrote; the saved config must equal this model's config.
  void load_state(const std::string& dir);

  /// The micro-batch of `step`, `micro` ([batch, seq_len + 1] int64): a pure function of (seed, step, micro).
  torch::Tensor sample_batch(int64_t step, int64_t micro) const;

 private:
  double train_step();

  Transformer model_;
  TrainOptions opt_;
  std::vector<Corpus> corpora_;
  std::vector<std::pair<size_t, size_t>> train_ranges_;  // per corpus
  std::vector<double> cum_weight_;                        // sampling ∝ train bytes
  std::vector<torch::Tensor> params_;
  std::vector<std::string> param_names_;
  std::unique_ptr<torch::optim::AdamW> optim_;
  int64_t step_ = 0;
  int64_t tokens_ = 0;
  double last_grad_norm_ = 0;
};

/// Held-out bits per byte of one text: BOS + bytes scored with the window policy (batched windows).
double text_bits_per_byte(Transformer& model, const std::string& text, int64_t bos_id);

/// Selects canonical parameter names by keyword or glob list: "all", "attn", "mlp", "layers:0,2",
/// or comma-separated globs ("blocks.1.*,ln_final.*"). Throws when nothing matches.
std::vector<std::string> select_parameters(const Transformer& model, const std::string& spec);

}  // namespace ccc::model
