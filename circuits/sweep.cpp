#include "circuits/sweep.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/segments.h"
#include "model/base/util.h"

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

namespace {

// A sweep's results of one unit of work (a pass): per component, its per-token bits.
std::string pack_unit(const std::vector<std::vector<double>>& per_component) {
  std::string out;
  for (const auto& v : per_component) {
    const uint64_t n = v.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += dist::pack(v);
  }
  return out;
}

std::vector<std::vector<double>> unpack_unit(std::string_view bytes, size_t count) {
  std::vector<std::vector<double>> out;
  size_t off = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t n = 0;
    CCC_CHECK(off + sizeof n <= bytes.size(), "sweep: a unit's results are short");
    std::memcpy(&n, bytes.data() + off, sizeof n);
    off += sizeof n;
    CCC_CHECK(off + n * sizeof(double) <= bytes.size(), "sweep: a unit's results are short");
    out.push_back(dist::unpack_doubles(bytes.substr(off, n * sizeof(double))));
    off += n * sizeof(double);
  }
  CCC_CHECK(off == bytes.size(), "sweep: a unit's results have trailing bytes");
  return out;
}

// Runs units [0, n) of a sharded computation — split across MPI ranks (dist::map), each unit exactly as one
// process runs it — and, with a journal, in rounds of one unit per rank, appending each round's results
// to it (rank 0) and skipping the units it already holds.
std::vector<std::string> run_units(int64_t n, const std::function<std::string(int64_t)>& fn, SweepJournal* journal,
                                   const std::function<void(int64_t)>& done, const std::vector<double>& cost) {
  if (journal == nullptr) return dist::map(n, fn, done, cost);
  std::vector<std::string> out(static_cast<size_t>(n));
  std::vector<int64_t> pending;
  for (int64_t u = 0; u < n; ++u) {
    if (const std::string* r = journal->find(u)) {
      out[static_cast<size_t>(u)] = *r;
      if (done) done(u);
    } else {
      pending.push_back(u);
    }
  }
  const auto round = static_cast<size_t>(dist::size());
  for (size_t r0 = 0; r0 < pending.size(); r0 += round) {
    const size_t rc = std::min(round, pending.size() - r0);
    std::vector<double> round_cost;
    for (size_t k = 0; k < rc && !cost.empty(); ++k) round_cost.push_back(cost[static_cast<size_t>(pending[r0 + k])]);
    const auto res = dist::map(static_cast<int64_t>(rc), [&](int64_t k) { return fn(pending[r0 + static_cast<size_t>(k)]); },
                               [&](int64_t k) {
                                 if (done) done(pending[r0 + static_cast<size_t>(k)]);
                               }, round_cost);
    for (size_t k = 0; k < rc; ++k) {
      out[static_cast<size_t>(pending[r0 + k])] = res[k];
      journal->add(pending[r0 + k], res[k]);
    }
    dist::fault_point("sweep.round");
  }
  return out;
}

}  // namespace

SweepJournal::SweepJournal(std::string path, const std::string& key) : path_(std::move(path)) {
  key_ = "ccc-sweep-partial 1 " + sha256_hex(key) + "\n";
  // rank 0 reads the file and every rank gets its bytes (the other ranks need not see rank 0's disk)
  std::string bytes;
  if (dist::root()) {
    std::error_code ec;
    if (std::filesystem::exists(path_, ec)) {
      bytes = read_file(path_, ReadCap{uint64_t{1} << 40, "sweep partial results"});
      CCC_CHECK(bytes.compare(0, key_.size(), key_) == 0, path_,
                ": partial results of another sweep (a different model, text, mode, policy or component set); "
                "remove it or choose another --partial file");
    }
  }
  bytes = dist::broadcast(bytes);
  if (bytes.empty()) return;
  size_t off = key_.size();
  for (;;) {  // records: unit (u64), length (u64), bytes; a record cut short by a kill is dropped
    uint64_t unit = 0, len = 0;
    if (off + 16 > bytes.size()) break;
    std::memcpy(&unit, bytes.data() + off, 8);
    std::memcpy(&len, bytes.data() + off + 8, 8);
    if (off + 16 + len > bytes.size()) break;
    units_[static_cast<int64_t>(unit)] = bytes.substr(off + 16, len);
    off += 16 + len;
  }
  valid_bytes_ = off;
  resumed_ = static_cast<int64_t>(units_.size());
}

const std::string* SweepJournal::find(int64_t unit) const {
  auto it = units_.find(unit);
  return it == units_.end() ? nullptr : &it->second;
}

void SweepJournal::add(int64_t unit, const std::string& bytes) {
  units_[unit] = bytes;
  if (!dist::root()) return;  // rank 0 keeps the file
  std::string rec;
  const uint64_t u = static_cast<uint64_t>(unit), len = bytes.size();
  rec.append(reinterpret_cast<const char*>(&u), 8);
  rec.append(reinterpret_cast<const char*>(&len), 8);
  rec += bytes;
  const bool fresh = valid_bytes_ == 0;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  CCC_CHECK(fd >= 0, "cannot open ", path_, " for the sweep's partial results: ", std::strerror(errno));
  std::string out = fresh ? key_ + rec : rec;
  const off_t at = static_cast<off_t>(fresh ? 0 : valid_bytes_);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t w = ::pwrite(fd, out.data() + done, out.size() - done, at + static_cast<off_t>(done));
    if (w <= 0) {
      const int e = errno;
      ::close(fd);
      CCC_FAIL("cannot write ", path_, ": ", std::strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  const bool ok = ::ftruncate(fd, at + static_cast<off_t>(out.size())) == 0 && ::fsync(fd) == 0;
  ::close(fd);
  CCC_CHECK(ok, "cannot write ", path_, ": ", std::strerror(errno));
  valid_bytes_ = static_cast<size_t>(at) + out.size();
}

void SweepJournal::remove() {
  if (!dist::root()) return;
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

SweepPlan plan_sweep(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                     const std::vector<Component>& set, SweepPath path, int64_t max_rows, bool clean) {
  SweepPlan plan;
  auto opt = run.stream_options();
  const bool rolling = model::resolve_window_policy(m.config, opt).second;
  if (path == SweepPath::kNaive || !rolling) {
    for (size_t i = 0; i < set.size(); ++i) plan.units.push_back({i});
  } else {
    plan.rows_per_copy = static_cast<int64_t>(model::stream_token_counts(m, text, opt).size());
    const auto group = static_cast<size_t>(std::max<int64_t>(1, max_rows / plan.rows_per_copy));
    std::vector<size_t> order(set.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    // kShared: a pass holds components of one layer (up to `group` of them), branching from the clean
    // residual stream entering that block (every component edits a hook inside its block, after
    // hook_resid_pre); passes of different layers are independent units of about equal size, which the
    // ranks of a scaled-out sweep share. kStacked: the set in order, `group` per pass.
    if (path == SweepPath::kShared)
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return set[a].layer < set[b].layer; });
    for (size_t i : order) {
      if (plan.units.empty() || plan.units.back().size() >= group ||
          (path == SweepPath::kShared && set[plan.units.back().front()].layer != set[i].layer))
        plan.units.emplace_back();
      plan.units.back().push_back(i);
    }
  }
  // each unit's cost in copies × blocks run (a copy of the streams through one block = 1)
  const double L = static_cast<double>(m.config.n_layers);
  for (const auto& comps : plan.units) {
    double c = 0;
    if (path == SweepPath::kNaive || !rolling) {
      c = L;
    } else if (path == SweepPath::kStacked) {
      c = static_cast<double>(comps.size()) * L;
    } else {
      double trunk = 0;
      for (size_t i : comps) {
        c += L - static_cast<double>(set[i].layer);
        trunk = std::max(trunk, static_cast<double>(set[i].layer));
      }
      c += trunk;
    }
    plan.cost.push_back(c);
  }
  if (clean) plan.cost.push_back(L);
  return plan;
}

std::vector<std::vector<double>> sweep_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                            const std::vector<Component>& set, const Reference* ref, SweepPath path,
                                            int64_t max_rows, const ProgressFn& progress,
                                            const std::function<void(model::HookSet&, int64_t)>& base,
                                            SweepJournal* journal, std::vector<double>* clean) {
  std::vector<std::vector<double>> out(set.size());
  auto opt = run.stream_options();
  const bool rolling = model::resolve_window_policy(m.config, opt).second;
  const auto n_set = static_cast<int64_t>(set.size());
  if (base && path == SweepPath::kShared) path = SweepPath::kStacked;
  const SweepPlan plan = plan_sweep(m, text, run, set, path, max_rows, clean != nullptr);
  const auto& units = plan.units;
  const int64_t B = plan.rows_per_copy;
  const auto n_units = static_cast<int64_t>(units.size());
  auto run_unit = [&](int64_t u) -> std::string {
    if (u == n_units) return dist::pack(ablated_bits(m, text, run, {}, nullptr));  // the clean run
    const auto& comps = units[static_cast<size_t>(u)];
    std::vector<std::vector<double>> res(comps.size());
    if (path == SweepPath::kNaive || !rolling) {
      std::function<void(model::HookSet&)> one_row;
      if (base) one_row = [&](model::HookSet& hs) { base(hs, 0); };
      res[0] = ablated_bits(m, text, run, {set[comps[0]]}, ref, one_row);
    } else if (path == SweepPath::kStacked) {
      std::vector<std::vector<Component>> per_row;
      for (size_t i : comps) per_row.push_back({set[i]});
      model::HookSet hooks;
      install_ablation(hooks, m.config, per_row, B, run.mode, ref, run.seed);
      if (base) base(hooks, B);
      auto o = opt;
      o.hooks = [&](int64_t) { return &hooks; };
      const auto per_stream = model::segmented_token_bits(m, text, o, static_cast<int64_t>(comps.size()));
      for (size_t i = 0; i < comps.size(); ++i) res[i] = flatten(per_stream, i * static_cast<size_t>(B), static_cast<size_t>(B));
    } else {
      std::vector<std::vector<size_t>> members;  // per branch: positions in comps
      for (size_t k = 0; k < comps.size(); ++k) {
        if (members.empty() || set[comps[members.back().front()]].layer != set[comps[k]].layer) members.emplace_back();
        members.back().push_back(k);
      }
      std::vector<model::HookSet> hooks(members.size());
      std::vector<model::Branch> branches;
      for (size_t bi = 0; bi < members.size(); ++bi) {
        std::vector<std::vector<Component>> per_row;
        for (size_t k : members[bi]) per_row.push_back({set[comps[k]]});
        install_ablation(hooks[bi], m.config, per_row, B, run.mode, ref, run.seed);
        branches.push_back({static_cast<int>(set[comps[members[bi].front()]].layer), static_cast<int64_t>(per_row.size()), &hooks[bi]});
      }
      const auto bits = model::segmented_branched_bits(m, text, opt, branches, /*clean=*/false);
      for (size_t bi = 0; bi < members.size(); ++bi)
        for (size_t k = 0; k < members[bi].size(); ++k)
          res[members[bi][k]] = flatten(bits.branches[bi], k * static_cast<size_t>(B), static_cast<size_t>(B));
    }
    dist::fault_point("sweep.unit");
    return pack_unit(res);
  };
  int64_t done = 0;
  const auto results = run_units(n_units + (clean != nullptr ? 1 : 0), run_unit, journal, [&](int64_t u) {
    if (u == n_units) return;
    done += static_cast<int64_t>(units[static_cast<size_t>(u)].size());
    if (progress) progress(done, n_set);
  }, plan.cost);
  if (clean != nullptr) *clean = dist::unpack_doubles(results.back());
  for (size_t u = 0; u < units.size(); ++u) {
    auto res = unpack_unit(results[u], units[u].size());
    for (size_t k = 0; k < units[u].size(); ++k) out[units[u][k]] = std::move(res[k]);
  }
  return out;
}

std::vector<std::vector<double>> circuits_bits(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                                               const std::vector<std::vector<Component>>& circuits,
                                               const Reference* ref, int64_t max_rows, const ProgressFn& progress) {
  std::vector<std::vector<double>> out(circuits.size());
  auto opt = run.stream_options();
  const auto n = static_cast<int64_t>(circuits.size());
  const bool rolling = model::resolve_window_policy(m.config, opt).second;
  // units: one circuit per scoring (strided policy), or `group` circuits per batched pass
  const int64_t B = rolling ? static_cast<int64_t>(model::stream_token_counts(m, text, opt).size()) : 1;
  const size_t group = rolling ? static_cast<size_t>(std::max<int64_t>(1, max_rows / B)) : 1;
  std::vector<std::pair<size_t, size_t>> units;  // first circuit, count
  for (size_t c0 = 0; c0 < circuits.size(); c0 += group) units.push_back({c0, std::min(group, circuits.size() - c0)});
  auto run_unit = [&](int64_t u) -> std::string {
    const auto [c0, gc] = units[static_cast<size_t>(u)];
    std::vector<std::vector<double>> res(gc);
    if (!rolling) {
      res[0] = ablated_bits(m, text, run, circuits[c0], ref);
    } else {
      std::vector<std::vector<Component>> per_row(circuits.begin() + static_cast<std::ptrdiff_t>(c0),
                                                  circuits.begin() + static_cast<std::ptrdiff_t>(c0 + gc));
      model::HookSet hooks;
      install_ablation(hooks, m.config, per_row, B, run.mode, ref, run.seed);
      auto o = opt;
      o.hooks = [&](int64_t) { return &hooks; };
      const auto per_stream = model::segmented_token_bits(m, text, o, static_cast<int64_t>(gc));
      for (size_t i = 0; i < gc; ++i) res[i] = flatten(per_stream, i * static_cast<size_t>(B), static_cast<size_t>(B));
    }
    return pack_unit(res);
  };
  int64_t done = 0;
  const auto results = dist::map(static_cast<int64_t>(units.size()), run_unit, [&](int64_t u) {
    done += static_cast<int64_t>(units[static_cast<size_t>(u)].second);
    if (progress) progress(done, n);
  });
  for (size_t u = 0; u < units.size(); ++u) {
    auto res = unpack_unit(results[u], units[u].second);
    for (size_t k = 0; k < units[u].second; ++k) out[units[u].first + k] = std::move(res[k]);
  }
  return out;
}

}  // namespace ccc::circuits
