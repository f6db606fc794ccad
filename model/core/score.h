#pragma once
// Scoring a token sequence in bits and greedy/sampled generation.
//
// Window policy for sequences longer than the context (n_ctx = W, stride S = W/2 by default):
// window 0 covers tokens [0, W) and scores every prediction in it; window k >= 1 covers
// [k·S, k·S + W) and scores only the predictions of tokens it has not scored yet, so every token
// after the first window is predicted from at least W - S tokens of context. Positions restart at 0
// in each window. The compressor replays the same windows incrementally.

#include <cstdint>
#include <functional>
#include <vector>

#include "model/core/transformer.h"

namespace ccc::model {

struct WindowPolicy {
  int64_t window = 0;  ///< tokens per window; 0 = the model's n_ctx
  int64_t stride = 0;  ///< start-to-start distance; 0 = window / 2
  int64_t batch = 8;   ///< windows of equal length evaluated per forward (speed only: same bits within 1e-5)
};

/// The policy with its defaults filled in: window = n_ctx when 0, stride = window / 2 when 0.
WindowPolicy resolve_window(WindowPolicy policy, int64_t n_ctx);

/// bits[i] = -log2 p(tokens[i+1] | tokens[..i]) under the window policy; size tokens.size() - 1.
/// Runs in inference mode; `hooks` (optional) see every window's forward with a RunInfo: one row per
/// window (every row's stream = `stream`), absolute positions in `tokens`, and `byte_offsets[i]` of token i when
/// given (same length as tokens, −1 for BOS; else −1 everywhere).
std::vector<double> score_bits(Transformer& model, const std::vector<int64_t>& tokens, WindowPolicy policy = {},
                               HookSet* hooks = nullptr, const std::vector<int64_t>* byte_offsets = nullptr,
                               int64_t stream = 0);

/// score_bits for a sequence too long to hold: tokens arrive in pieces (push), bits leave in order (sink),
/// and memory stays bounded by one run of windows. Same windows, batches and bits as score_bits on the
/// whole sequence (scored `windows_per_run` windows at a time, a multiple of policy.batch).
class StreamScorer {
 public:
  using Sink = std::function<void(const double* bits, size_t n)>;
  StreamScorer(Transformer& model, WindowPolicy policy, Sink sink, int64_t windows_per_run = 64);
  /// Appends tokens (the first push starts with BOS) and scores every run of windows that is complete.
  void push(const int64_t* tokens, size_t n);
  /// Scores what remains; call once at the end.
  void finish();

 private:
  void run(size_t len, bool first_window_already_scored);
  Transformer& model_;
  WindowPolicy policy_;
  Sink sink_;
  int64_t windows_per_run_;
  std::vector<int64_t> buf_;  // tokens; buf_[head_] starts the next window to score
  size_t head_ = 0;
  bool started_ = false;      // a window has been scored (later runs skip what their first window repeats)
};

/// Rolling-window scoring, the compressor's policy for rotary models: token i is predicted from the
/// last `window` - 1 tokens before it (all of them while i < window) through a rolling KV cache, so
/// no token is ever re-encoded. Sequences are scored side by side as one batch, `chunk` tokens per
/// forward (speed only: same bits within 1e-5). Returns per-sequence bits (size len - 1 each).
/// `hooks` see every chunk's forward with a RunInfo: row r is stream first_stream + r, positions are
/// absolute in the sequence, rows past their end are not live (padding), and byte offsets come from
/// `byte_offsets` (one vector per sequence, −1 for BOS) when given.
std::vector<std::vector<double>> score_bits_rolling(Transformer& model, const std::vector<std::vector<int64_t>>& seqs,
                                                    int64_t window, int64_t chunk = 64, HookSet* hooks = nullptr,
                                                    const std::vector<std::vector<int64_t>>* byte_offsets = nullptr,
                                                    int64_t first_stream = 0);

/// One branch of a layer-shared rolling scoring: `copies` copies of every sequence continue the clean
/// residual stream entering block `start_layer` with their own `hooks` (e.g. copy i ablates component i)
/// and their own cache. Blocks before start_layer are computed once, by the clean pass, for all branches.
struct Branch {
  int start_layer = 0;
  int64_t copies = 1;
  HookSet* hooks = nullptr;
};
struct BranchedBits {
  std::vector<std::vector<double>> clean;                  ///< [sequence] bits (empty unless asked for)
  std::vector<std::vector<std::vector<double>>> branches;  ///< [branch][copy·B + sequence] bits
};
/// score_bits_rolling of the clean model (when `clean`) and of every branch in one pass over the chunks
/// (TransformerLens's start_at_layer on the rolling cache). A branch's bits equal score_bits_rolling of
/// copies·B rows (row c·B + r = sequence r, stream first_stream + c·B + r, as segmented copies) with its
/// hooks, whenever those hooks edit nothing before start_layer; equal to float rounding, not bit for bit
/// (a one-token chunk takes the full path here and the decode step there). Without `clean` the clean pass
/// stops at the last branch's start_layer.
BranchedBits score_bits_rolling_branched(Transformer& model, const std::vector<std::vector<int64_t>>& seqs,
                                         int64_t window, int64_t chunk, const std::vector<Branch>& branches,
                                         bool clean = true,
                                         const std::vector<std::vector<int64_t>>* byte_offsets = nullptr,
                                         int64_t first_stream = 0);

/// Options of generate(). temperature 0 = greedy (argmax, lowest id on ties).
struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  uint64_t seed = 0;
  int64_t stop_id = -1;  ///< stop after producing this id (not included); -1 = never
};

/// Continues `prompt` (non-empty, BOS included by the caller) on the KV-cache path; returns new ids.
std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt);

}  // namespace ccc::model
