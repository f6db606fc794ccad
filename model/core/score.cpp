#include "model/core/score.h"

#include <algorithm>
#include <cmath>

#include "model/base/error.h"
#include "model/core/bits.h"

namespace ccc::model {

WindowPolicy resolve_window(WindowPolicy policy, int64_t n_ctx) {
  if (policy.window <= 0) policy.window = n_ctx;
  if (policy.stride <= 0) policy.stride = std::max<int64_t>(1, policy.window / 2);
  return policy;
}

std::vector<double> score_bits(Transformer& model, const std::vector<int64_t>& tokens, WindowPolicy policy,
                               HookSet* hooks, const std::vector<int64_t>* byte_offsets, int64_t stream) {
  torch::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<double> bits;
  if (n < 2) return bits;
  policy = resolve_window(policy, model->config().n_ctx);
  const int64_t W = policy.window, S = policy.stride;
  const int64_t B = std::max<int64_t>(1, policy.batch);
  CCC_CHECK(W >= 2 && W <= model->config().n_ctx, "window ", W, " must be in [2, n_ctx=", model->config().n_ctx, "]");
  CCC_CHECK(S >= 1 && S < W, "stride ", S, " must be in [1, window=", W, ")");
  // windows: (start, len, first prediction index scored)
  struct Win {
    int64_t start, len, first;
  };
  std::vector<Win> wins;
  for (int64_t start = 0, scored = 0; scored < n - 1; start += S) {
    const int64_t len = std::min(W, n - start);
    wins.push_back({start, len, scored - start});
    scored = start + len - 1;
    if (start + len >= n) break;
  }
  CCC_CHECK(byte_offsets == nullptr || static_cast<int64_t>(byte_offsets->size()) == n, "score_bits: ",
            byte_offsets == nullptr ? 0 : byte_offsets->size(), " byte offsets for ", n, " tokens");
  bits.assign(n - 1, 0.0);
  const auto all = torch::from_blob(const_cast<int64_t*>(tokens.data()), {n}, torch::kInt64);
  for (size_t w0 = 0; w0 < wins.size();) {
    size_t w1 = w0 + 1;
    while (w1 < wins.size() && static_cast<int64_t>(w1 - w0) < B && wins[w1].len == wins[w0].len) ++w1;
    const int64_t len = wins[w0].len;
    std::vector<torch::Tensor> rows;
    for (size_t w = w0; w < w1; ++w) rows.push_back(all.narrow(0, wins[w].start, len));
    auto ids = torch::stack(rows);  // [b, len]
    RunInfo info;
    if (hooks != nullptr) {
      info = RunInfo::empty(static_cast<int64_t>(w1 - w0), len);
      for (size_t w = w0; w < w1; ++w) {
        const int64_t r = static_cast<int64_t>(w - w0);
        info.stream[r] = stream;
        for (int64_t j = 0; j < len; ++j) {
          info.position[r * len + j] = wins[w].start + j;
          if (byte_offsets != nullptr) info.byte_offset[r * len + j] = (*byte_offsets)[wins[w].start + j];
        }
      }
    }
    auto logits = model->forward(ids, {hooks, nullptr, hooks != nullptr ? &info : nullptr});  // [b, len, V]
    auto tb = token_bits(logits.narrow(1, 0, len - 1).to(torch::kFloat64), ids.narrow(1, 1, len - 1)).contiguous();
    auto acc = tb.accessor<double, 2>();
    for (size_t w = w0; w < w1; ++w)
      for (int64_t j = wins[w].first; j < len - 1; ++j) bits[wins[w].start + j] = acc[w - w0][j];
    w0 = w1;
  }
  return bits;
}

StreamScorer::StreamScorer(Transformer& model, WindowPolicy policy, Sink sink, int64_t windows_per_run)
    : model_(model), policy_(resolve_window(policy, model->config().n_ctx)), sink_(std::move(sink)) {
  const int64_t B = std::max<int64_t>(1, policy_.batch);
  windows_per_run_ = std::max<int64_t>(1, (windows_per_run + B - 1) / B) * B;  // batches as score_bits forms them
}

// Scores buf_[head_, head_ + len) as score_bits would score it alone, hands on the bits not scored before,
// and moves head_ past the tokens no later window starts at or after.
void StreamScorer::run(size_t len, bool first_window_already_scored) {
  const int64_t W = policy_.window, S = policy_.stride;
  const auto from = buf_.begin() + static_cast<std::ptrdiff_t>(head_);
  const std::vector<int64_t> piece(from, from + static_cast<std::ptrdiff_t>(len));
  const auto bits = score_bits(model_, piece, policy_);
  // A window after the first predicts tokens from W - S of its positions on: its first W - S - 1 bits
  // were scored by the window before.
  const size_t skip = first_window_already_scored ? static_cast<size_t>(W - S - 1) : 0;
  if (bits.size() > skip) sink_(bits.data() + skip, bits.size() - skip);
  const int64_t windows = len <= static_cast<size_t>(W) ? 1 : (static_cast<int64_t>(len) - W + S - 1) / S + 1;
  head_ = std::min(buf_.size(), head_ + static_cast<size_t>(windows * S));
  started_ = true;
}

void StreamScorer::push(const int64_t* tokens, size_t n) {
  if (head_ > buf_.size() / 2) {  // drop what was scored, at most once per doubling (no quadratic moves)
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  buf_.insert(buf_.end(), tokens, tokens + n);
  const size_t need = static_cast<size_t>((windows_per_run_ - 1) * policy_.stride + policy_.window);
  // A run is scored once a token past its last window exists (then none of its windows is the sequence's last).
  while (buf_.size() - head_ > need) run(need, started_);
}

void StreamScorer::finish() {
  // The windows already scored reached W - S tokens into the rest: anything beyond is still to predict.
  const size_t scored_into = started_ ? static_cast<size_t>(policy_.window - policy_.stride) : 1;
  if (buf_.size() - head_ > scored_into) run(buf_.size() - head_, started_);
  buf_.clear();
  head_ = 0;
}

namespace {

// The sequences of a rolling scoring as one [B, n] id tensor, padded with token 0 past their ends (their
// predictions are discarded); n = the longest length.
torch::Tensor padded_ids(const std::vector<std::vector<int64_t>>& seqs, int64_t n) {
  auto ids = torch::zeros({static_cast<int64_t>(seqs.size()), n}, torch::kInt64);
  auto acc = ids.accessor<int64_t, 2>();
  for (size_t r = 0; r < seqs.size(); ++r)
    for (size_t i = 0; i < seqs[r].size(); ++i) acc[static_cast<int64_t>(r)][static_cast<int64_t>(i)] = seqs[r][i];
  return ids;
}

// The run record of chunk [s, s + len) for `copies` copies of the sequences (row c·B + r = sequence r).
RunInfo chunk_info(const std::vector<std::vector<int64_t>>& seqs, int64_t copies, int64_t s, int64_t len,
                   const std::vector<std::vector<int64_t>>* byte_offsets, int64_t first_stream) {
  const auto B = static_cast<int64_t>(seqs.size());
  RunInfo info = RunInfo::empty(copies * B, len);
  for (int64_t row = 0; row < copies * B; ++row) {
    const int64_t r = row % B;
    const int64_t size = static_cast<int64_t>(seqs[r].size());
    info.stream[row] = first_stream + row;
    info.live[row] = s < size - 1 ? 1 : 0;
    for (int64_t j = 0; j < len && s + j < size; ++j) {
      info.position[row * len + j] = s + j;
      if (byte_offsets != nullptr) info.byte_offset[row * len + j] = (*byte_offsets)[r][s + j];
    }
  }
  return info;
}

// Writes the bits of chunk [s, s + len) from logits [rows, len, V] into bits[row] (sized len(seq) − 1).
void store_chunk_bits(const torch::Tensor& logits, const torch::Tensor& ids, int64_t s, int64_t len,
                      std::vector<std::vector<double>>& bits) {
  const int64_t rows = logits.size(0), B = ids.size(0);
  auto tgt = ids.narrow(1, s + 1, len).clamp_max(logits.size(2) - 1);
  if (rows != B) tgt = tgt.repeat({rows / B, 1});
  auto tb = token_bits(logits.to(torch::kFloat64), tgt).contiguous();
  auto a = tb.accessor<double, 2>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len && s + j < static_cast<int64_t>(bits[r].size()); ++j) bits[r][s + j] = a[r][j];
}

void check_rolling(const Transformer& model, int64_t window, int64_t chunk,
                   const std::vector<std::vector<int64_t>>& seqs, const std::vector<std::vector<int64_t>>* byte_offsets) {
  CCC_CHECK(window >= 2 && window <= model->config().n_ctx, "rolling window ", window, " must be in [2, n_ctx=",
            model->config().n_ctx, "]");
  CCC_CHECK(chunk >= 1, "chunk must be >= 1");
  CCC_CHECK(byte_offsets == nullptr || byte_offsets->size() == seqs.size(), "rolling scoring: byte offsets for ",
            byte_offsets == nullptr ? 0 : byte_offsets->size(), " sequences, ", seqs.size(), " given");
}

int64_t longest(const std::vector<std::vector<int64_t>>& seqs) {
  int64_t n = 0;
  for (const auto& s : seqs) n = std::max<int64_t>(n, static_cast<int64_t>(s.size()));
  return n;
}

// Zeroed bits for `copies` copies of the sequences (len − 1 each).
std::vector<std::vector<double>> empty_bits(const std::vector<std::vector<int64_t>>& seqs, int64_t copies) {
  std::vector<std::vector<double>> bits;
  for (int64_t c = 0; c < copies; ++c)
    for (const auto& s : seqs) bits.emplace_back(s.empty() ? 0 : s.size() - 1, 0.0);
  return bits;
}

}  // namespace

std::vector<std::vector<double>> score_bits_rolling(Transformer& model, const std::vector<std::vector<int64_t>>& seqs,
                                                    int64_t window, int64_t chunk, HookSet* hooks,
                                                    const std::vector<std::vector<int64_t>>* byte_offsets,
                                                    int64_t first_stream) {
  torch::InferenceMode guard;
  check_rolling(model, window, chunk, seqs, byte_offsets);
  const int64_t n = longest(seqs);
  auto bits = empty_bits(seqs, 1);
  if (n < 2) return bits;
  const int64_t B = static_cast<int64_t>(seqs.size());
  const auto ids = padded_ids(seqs, n);
  auto cache = model->make_cache(B, window, /*rolling=*/true);
  for (int64_t s = 0; s < n - 1; s += chunk) {
    const int64_t len = std::min(chunk, n - 1 - s);
    RunInfo info;
    if (hooks != nullptr) info = chunk_info(seqs, 1, s, len, byte_offsets, first_stream);
    auto logits = model->forward(ids.narrow(1, s, len), {hooks, &cache, hooks != nullptr ? &info : nullptr});
    store_chunk_bits(logits, ids, s, len, bits);
  }
  return bits;
}

BranchedBits score_bits_rolling_branched(Transformer& model, const std::vector<std::vector<int64_t>>& seqs,
                                         int64_t window, int64_t chunk, const std::vector<Branch>& branches,
                                         bool clean, const std::vector<std::vector<int64_t>>* byte_offsets,
                                         int64_t first_stream) {
  torch::InferenceMode guard;
  check_rolling(model, window, chunk, seqs, byte_offsets);
  const int n_layers = static_cast<int>(model->config().n_layers);
  BranchedBits out;
  const int64_t n = longest(seqs);
  int last = 0;
  std::vector<char> needed(static_cast<size_t>(n_layers), 0);
  for (const auto& b : branches) {
    CCC_CHECK(b.start_layer >= 0 && b.start_layer < n_layers, "branch start_layer ", b.start_layer,
              " outside [0, ", n_layers, ")");
    CCC_CHECK(b.copies >= 1, "branch copies must be >= 1");
    out.branches.push_back(empty_bits(seqs, b.copies));
    needed[static_cast<size_t>(b.start_layer)] = 1;
    last = std::max(last, b.start_layer);
  }
  if (clean) out.clean = empty_bits(seqs, 1);
  if (n < 2) return out;
  const int64_t B = static_cast<int64_t>(seqs.size());
  const auto ids = padded_ids(seqs, n);
  // the clean pass records the residual stream entering every block a branch starts at
  std::vector<torch::Tensor> resid(static_cast<size_t>(n_layers));
  HookSet observe;
  for (int l = 0; l < n_layers; ++l)
    if (needed[static_cast<size_t>(l)])
      observe.observe(hook_name(l, kResidPre),
                      [&resid, l](const torch::Tensor& x, const HookContext&) { resid[static_cast<size_t>(l)] = x.clone(); });
  RunOptions clean_run;
  clean_run.hooks = &observe;
  if (!clean) clean_run.stop_at_layer = last;
  auto clean_cache = model->make_cache(B, window, /*rolling=*/true);
  clean_run.cache = &clean_cache;
  std::vector<KVCache> caches;
  for (const auto& b : branches) {
    caches.push_back(model->make_cache(b.copies * B, window, /*rolling=*/true));
    for (int l = 0; l < b.start_layer; ++l) caches.back().k[l] = caches.back().v[l] = torch::Tensor();  // never read
  }
  for (int64_t s = 0; s < n - 1; s += chunk) {
    const int64_t len = std::min(chunk, n - 1 - s);
    auto x = model->forward(ids.narrow(1, s, len), clean_run);
    if (clean) store_chunk_bits(x, ids, s, len, out.clean);
    else resid[static_cast<size_t>(last)] = x;  // the pass stopped before block `last`, whose hooks did not run
    for (size_t bi = 0; bi < branches.size(); ++bi) {
      const auto& b = branches[bi];
      const auto& r = resid[static_cast<size_t>(b.start_layer)];
      const RunInfo info = chunk_info(seqs, b.copies, s, len, byte_offsets, first_stream);
      auto logits = model->forward_from(b.copies > 1 ? r.repeat({b.copies, 1, 1}) : r, b.start_layer,
                                        {b.hooks, &caches[bi], &info});
      store_chunk_bits(logits, ids, s, len, out.branches[bi]);
    }
  }
  return out;
}

std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt) {
  torch::InferenceMode guard;
  CCC_CHECK(!prompt.empty(), "generate: empty prompt (prepend BOS)");
  const int64_t n_ctx = model->config().n_ctx;
  CCC_CHECK(static_cast<int64_t>(prompt.size()) < n_ctx, "generate: prompt of ", prompt.size(),
            " tokens fills the context n_ctx=", n_ctx);
  auto cache = model->make_cache(1);
  auto gen = at::detail::createCPUGenerator(opt.seed);
  std::vector<int64_t> out;
  auto input = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
  for (int64_t i = 0; i < opt.max_new_tokens && cache.len < n_ctx; ++i) {
    auto logits = model->forward(input, {nullptr, &cache}).select(1, -1).squeeze(0);  // [V]
    int64_t next;
    if (opt.temperature <= 0) {
      next = logits.argmax().item<int64_t>();
    } else {
      auto probs = torch::softmax(logits.to(torch::kFloat64) / opt.temperature, -1);
      next = torch::multinomial(probs, 1, false, gen).item<int64_t>();
    }
    if (next == opt.stop_id) break;
    out.push_back(next);
    input = torch::tensor({next}, torch::kInt64).view({1, 1});
  }
  return out;
}

}  // namespace ccc::model
