#include "model/scoring/streams.h"

#include <algorithm>

#include "model/base/error.h"
#include "model/base/segments.h"

namespace ccc::model {

StreamPolicy stream_policy(const ModelConfig& cfg, const StreamOptions& opt) {
  CCC_CHECK(opt.streams >= 0, "--streams ", opt.streams, ": must be 0 (automatic) or more");
  CCC_CHECK(opt.window >= 0, "--window ", opt.window, ": must be 0 (automatic) or more");
  const bool can_roll = cfg.pos != PosKind::kLearned;
  CCC_CHECK(!opt.rolling || can_roll, "compress: --rolling needs a model with relative (rotary) positions");
  StreamPolicy p;
  p.rolling = !(opt.strided || !can_roll);
  const int64_t W = opt.window > 0 ? opt.window : (p.rolling ? std::max<int64_t>(2, cfg.n_ctx / 2) : cfg.n_ctx);
  CCC_CHECK(W >= 2 && W <= cfg.n_ctx, "compress: window ", W, " must be in [2, n_ctx=", cfg.n_ctx, "]");
  p.window = W;
  p.stride = p.rolling ? 0 : std::max<int64_t>(1, W / 2);
  return p;
}

std::pair<int64_t, bool> resolve_window_policy(const ModelConfig& cfg, const StreamOptions& opt) {
  const auto p = stream_policy(cfg, opt);
  return {p.window, p.rolling};
}

std::string describe_policy(const ModelConfig& cfg, const StreamOptions& opt) {
  const auto p = stream_policy(cfg, opt);
  return p.rolling ? "rolling W=" + std::to_string(p.window)
                   : "strided W=" + std::to_string(p.window) + " S=" + std::to_string(p.stride);
}

int64_t auto_streams(uint64_t n_bytes) {
  return std::clamp<int64_t>(static_cast<int64_t>(n_bytes / kBytesPerStream), 1, kMaxAutoStreams);
}

int64_t resolve_streams(uint64_t n_bytes, int64_t streams) {
  CCC_CHECK(streams >= 0, "--streams ", streams, ": must be 0 (automatic) or more");
  const int64_t B = streams > 0 ? streams : auto_streams(n_bytes);
  return std::max<int64_t>(1, std::min<int64_t>(B, std::max<uint64_t>(1, n_bytes)));
}

std::vector<std::vector<int64_t>> segment_tokens(const LoadedModel& m, std::string_view input, int64_t B,
                                                 std::vector<std::vector<int64_t>>* offsets) {
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t s = 0; s < B; ++s) {
    const auto [a, b] = segment_range(input.size(), B, s);
    std::vector<int64_t> toks{m.config.bos_id};
    auto enc = m.tokenizer->encode(input.substr(a, b - a));
    toks.insert(toks.end(), enc.begin(), enc.end());
    if (offsets != nullptr) {
      std::vector<int64_t> off{-1};
      for (int64_t o : m.tokenizer->byte_offsets(enc)) off.push_back(static_cast<int64_t>(a) + o);
      offsets->push_back(std::move(off));
    }
    seqs.push_back(std::move(toks));
  }
  return seqs;
}

std::vector<std::vector<int64_t>> stream_tokens(const LoadedModel& m, std::string_view input, const StreamOptions& opt) {
  return segment_tokens(m, input, resolve_streams(input.size(), opt.streams));
}

std::vector<uint64_t> stream_token_counts(const LoadedModel& m, std::string_view input, const StreamOptions& opt) {
  std::vector<uint64_t> out;
  for (const auto& seq : stream_tokens(m, input, opt)) out.push_back(seq.size() - 1);
  return out;
}

std::vector<std::vector<double>> segmented_token_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt,
                                                      int64_t copies) {
  CCC_CHECK(copies >= 1, "segmented_token_bits: copies must be >= 1");
  const int64_t B = resolve_streams(input.size(), opt.streams);
  const auto policy = stream_policy(m.config, opt);
  HookSet* hooks = opt.hooks ? opt.hooks(0) : nullptr;
  std::vector<std::vector<int64_t>> offsets;
  auto seqs = segment_tokens(m, input, B, hooks != nullptr ? &offsets : nullptr);
  if (copies > 1) {
    CCC_CHECK(policy.rolling, "segmented_token_bits: copies need the rolling window policy");
    const auto one = seqs;
    const auto one_off = offsets;
    for (int64_t c = 1; c < copies; ++c) {
      seqs.insert(seqs.end(), one.begin(), one.end());
      if (hooks != nullptr) offsets.insert(offsets.end(), one_off.begin(), one_off.end());
    }
  }
  if (policy.rolling)
    return score_bits_rolling(m.model, seqs, policy.window, 64, hooks, hooks != nullptr ? &offsets : nullptr);
  std::vector<std::vector<double>> out;
  for (int64_t s = 0; s < B; ++s)
    out.push_back(score_bits(m.model, seqs[s], {policy.window, policy.stride}, hooks,
                             hooks != nullptr ? &offsets[s] : nullptr, s));
  return out;
}

BranchedBits segmented_branched_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt,
                                     const std::vector<Branch>& branches, bool clean) {
  const auto policy = stream_policy(m.config, opt);
  CCC_CHECK(policy.rolling, "segmented_branched_bits: branches need the rolling window policy");
  std::vector<std::vector<int64_t>> offsets;
  const auto seqs = segment_tokens(m, input, resolve_streams(input.size(), opt.streams), &offsets);
  return score_bits_rolling_branched(m.model, seqs, policy.window, 64, branches, clean, &offsets);
}

double segmented_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt) {
  double total = 0;
  for (const auto& bits : segmented_token_bits(m, input, opt))
    for (double b : bits) total += b;
  return total;
}

}  // namespace ccc::model
