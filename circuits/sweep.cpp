#include "circuits/sweep.h"

#include <algorithm>
#include <random>

#include "model/base/error.h"
#include "model/base/segments.h"

namespace ccc::circuits {

namespace {

std::vector<double> flatten(const std::vector<std::vector<double>>& per_stream, size_t first, size_t count) {
  std::vector<double> out;
  for (size_t s = first; s < first + count; ++s) out.insert(out.end(), per_stream[s].begin(), per_stream[s].end());
  return out;
}

}  // namespace

model::StreamOptions ScoringRun::stream_options() const {
  model::StreamOptions opt;
  opt.streams = streams;
  opt.window = window;
  return opt;
}

TokenMask token_mask(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                     const std::vector<uint8_t>& byte_mask) {
  CCC_CHECK(byte_mask.size() == text.size(), "token_mask: ", byte_mask.size(), " flags for ", text.size(), " bytes");
  const int64_t B = model::resolve_streams(text.size(), run.streams);
  std::vector<std::vector<int64_t>> offsets;
  (void)model::segment_tokens(m, text, B, &offsets);  // only the byte offsets are needed
  TokenMask mask;
  for (size_t s = 0; s < offsets.size(); ++s) {
    const auto end = static_cast<int64_t>(segment_range(text.size(), static_cast<uint64_t>(B), s).second);
    const auto& off = offsets[s];
    for (size_t t = 1; t < off.size(); ++t) {  // position 0 is BOS
      const int64_t a = off[t];
      const bool on = a >= 0 && byte_mask[static_cast<size_t>(a)] != 0;
      mask.on.push_back(on);
      if (!on) continue;
      const int64_t b = t + 1 < off.size() ? off[t + 1] : end;
      ++mask.positions;
      mask.bytes += std::max<int64_t>(0, b - a);
    }
  }
  return mask;
}

std::vector<double> masked(const std::vector<double>& bits, const TokenMask& mask) {
  CCC_CHECK(bits.size() == mask.on.size(), "position mask: ", mask.on.size(), " tokens, but ", bits.size(),
            " per-token bits");
  std::vector<double> out;
  out.reserve(static_cast<size_t>(mask.positions));
  for (size_t i = 0; i < bits.size(); ++i)
    if (mask.on[i]) out.push_back(bits[i]);
  return out;
}

double total_bits(const std::vector<double>& bits) {
  double t = 0;
  for (double b : bits) t += b;
  return t;
}

DeltaStats delta_stats(const std::vector<double>& clean, const std::vector<double>& ablated, int64_t n_bytes,
                       int64_t resamples, uint64_t seed) {
  CCC_CHECK(clean.size() == ablated.size(), "delta_stats: ", clean.size(), " clean vs ", ablated.size(), " ablated tokens");
  DeltaStats d;
  for (double b : clean) d.clean_total_bits += b;
  for (double b : ablated) d.ablated_total_bits += b;
  d.delta_bits = d.ablated_total_bits - d.clean_total_bits;
  d.delta_bits_per_byte = n_bytes > 0 ? d.delta_bits / static_cast<double>(n_bytes) : 0;
  const int64_t T = static_cast<int64_t>(clean.size());
  if (T == 0 || n_bytes <= 0) return d;
  // block bootstrap: ~100 contiguous blocks of tokens; statistic = mean Δ per token × tokens / bytes
  const int64_t block = std::max<int64_t>(1, T / 100), nb = (T + block - 1) / block;
  std::vector<double> sum(nb, 0), len(nb, 0);
  for (int64_t i = 0; i < T; ++i) {
    sum[i / block] += ablated[i] - clean[i];
    len[i / block] += 1;
  }
  const double scale = static_cast<double>(T) / static_cast<double>(n_bytes);
  std::mt19937_64 rng(seed ^ 0xB007ULL);
  std::vector<double> stat(static_cast<size_t>(std::max<int64_t>(1, resamples)));
  for (auto& s : stat) {
    double a = 0, n = 0;
    for (int64_t k = 0; k < nb; ++k) {
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(nb));
      a += sum[j];
      n += len[j];
    }
    s = a / n * scale;
  }
  std::sort(stat.begin(), stat.end());
  auto q = [&](double p) { return stat[static_cast<size_t>(std::clamp<double>(p * (stat.size() - 1), 0, stat.size() - 1))]; };
  d.ci_low = q(0.025);
  d.ci_high = q(0.975);
  return d;
}

std::vector<double> ablated_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                 const std::vector<Component>& circuit, const Reference* ref,
                                 const std::function<void(model::HookSet&)>& observe) {
  auto opt = run.stream_options();
  model::HookSet hooks;
  if (!circuit.empty()) install_ablation(hooks, m.config, {circuit}, 0, run.mode, ref, run.seed);
  if (observe) observe(hooks);
  if (!circuit.empty() || observe) opt.hooks = [&](int64_t) { return &hooks; };
  const auto per_stream = model::segmented_token_bits(m, text, opt);
  return flatten(per_stream, 0, per_stream.size());
}

std::vector<std::vector<double>> sweep_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                            const std::vector<Component>& set, const Reference* ref, SweepPath path,
                                            int64_t max_rows, const ProgressFn& progress,
                                            const std::function<void(model::HookSet&, int64_t)>& base) {
  std::vector<std::vector<double>> out(set.size());
  auto opt = run.stream_options();
  const bool rolling = model::resolve_window_policy(m.config, opt).second;
  const auto n_set = static_cast<int64_t>(set.size());
  auto report = [&](int64_t done) {
    if (progress) progress(done, n_set);
  };
  int64_t done = 0;
  if (base && path == SweepPath::kShared) path = SweepPath::kStacked;
  if (path == SweepPath::kNaive || !rolling) {
    std::function<void(model::HookSet&)> one_row;
    if (base) one_row = [&](model::HookSet& hs) { base(hs, 0); };
    for (size_t i = 0; i < set.size(); ++i) {
      out[i] = ablated_bits(m, text, run, {set[i]}, ref, one_row);
      report(++done);
    }
    return out;
  }
  const int64_t B = static_cast<int64_t>(model::stream_token_counts(m, text, opt).size());
  const int64_t group = std::max<int64_t>(1, max_rows / B);
  const auto mode = run.mode;
  if (path == SweepPath::kStacked) {
    for (size_t c0 = 0; c0 < set.size(); c0 += static_cast<size_t>(group)) {
      const size_t gc = std::min<size_t>(static_cast<size_t>(group), set.size() - c0);
      std::vector<std::vector<Component>> per_row;
      for (size_t i = 0; i < gc; ++i) per_row.push_back({set[c0 + i]});
      model::HookSet hooks;
      install_ablation(hooks, m.config, per_row, B, mode, ref, run.seed);
      if (base) base(hooks, B);
      opt.hooks = [&](int64_t) { return &hooks; };
      const auto per_stream = model::segmented_token_bits(m, text, opt, static_cast<int64_t>(gc));
      for (size_t i = 0; i < gc; ++i) out[c0 + i] = flatten(per_stream, i * static_cast<size_t>(B), static_cast<size_t>(B));
      report(done += static_cast<int64_t>(gc));
    }
    return out;
  }
  // kShared: components in layer order; a pass holds up to `group` of them as branches, one per layer
  // (every component edits a hook inside its block, after hook_resid_pre)
  std::vector<size_t> order(set.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return set[a].layer < set[b].layer; });
  for (size_t p0 = 0; p0 < order.size(); p0 += static_cast<size_t>(group)) {
    const size_t pc = std::min<size_t>(static_cast<size_t>(group), order.size() - p0);
    std::vector<std::vector<size_t>> members;  // per branch: indices into set
    for (size_t k = p0; k < p0 + pc; ++k) {
      if (members.empty() || set[members.back().front()].layer != set[order[k]].layer) members.emplace_back();
      members.back().push_back(order[k]);
    }
    std::vector<model::HookSet> hooks(members.size());
    std::vector<model::Branch> branches;
    for (size_t bi = 0; bi < members.size(); ++bi) {
      std::vector<std::vector<Component>> per_row;
      for (size_t i : members[bi]) per_row.push_back({set[i]});
      install_ablation(hooks[bi], m.config, per_row, B, mode, ref, run.seed);
      branches.push_back({static_cast<int>(set[members[bi].front()].layer), static_cast<int64_t>(per_row.size()), &hooks[bi]});
    }
    const auto bits = model::segmented_branched_bits(m, text, opt, branches, /*clean=*/false);
    for (size_t bi = 0; bi < members.size(); ++bi)
      for (size_t k = 0; k < members[bi].size(); ++k)
        out[members[bi][k]] = flatten(bits.branches[bi], k * static_cast<size_t>(B), static_cast<size_t>(B));
    report(done += static_cast<int64_t>(pc));
  }
  return out;
}

std::vector<std::vector<double>> circuits_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                               const std::vector<std::vector<Component>>& circuits,
                                               const Reference* ref, int64_t max_rows, const ProgressFn& progress) {
  std::vector<std::vector<double>> out(circuits.size());
  auto opt = run.stream_options();
  const auto n = static_cast<int64_t>(circuits.size());
  if (!model::resolve_window_policy(m.config, opt).second) {
    for (size_t i = 0; i < circuits.size(); ++i) {
      out[i] = ablated_bits(m, text, run, circuits[i], ref);
      if (progress) progress(static_cast<int64_t>(i) + 1, n);
    }
    return out;
  }
  const int64_t B = static_cast<int64_t>(model::stream_token_counts(m, text, opt).size());
  const int64_t group = std::max<int64_t>(1, max_rows / B);
  for (size_t c0 = 0; c0 < circuits.size(); c0 += static_cast<size_t>(group)) {
    const size_t gc = std::min<size_t>(static_cast<size_t>(group), circuits.size() - c0);
    std::vector<std::vector<Component>> per_row(circuits.begin() + static_cast<std::ptrdiff_t>(c0),
                                                circuits.begin() + static_cast<std::ptrdiff_t>(c0 + gc));
    model::HookSet hooks;
    install_ablation(hooks, m.config, per_row, B, run.mode, ref, run.seed);
    opt.hooks = [&](int64_t) { return &hooks; };
    const auto per_stream = model::segmented_token_bits(m, text, opt, static_cast<int64_t>(gc));
    for (size_t i = 0; i < gc; ++i) out[c0 + i] = flatten(per_stream, i * static_cast<size_t>(B), static_cast<size_t>(B));
    if (progress) progress(static_cast<int64_t>(c0 + gc), n);
  }
  return out;
}

}  // namespace ccc::circuits
