#include "experiments/ablate_cmd.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <iostream>
#include <random>
#include <sstream>

#include "circuits/attribution.h"
#include "circuits/patching.h"
#include "compress/lm_codec.h"
#include "experiments/common.h"
#include "experiments/icl.h"
#include "experiments/progress_hooks.h"
#include "model/base/error.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

compress::CodecOptions codec_of(const AblationRun& run) {
  compress::CodecOptions opt;
  opt.streams = run.streams;
  opt.window = run.window;
  return opt;
}

std::vector<double> flatten(const std::vector<std::vector<double>>& per_stream, size_t first, size_t count) {
  std::vector<double> out;
  for (size_t s = first; s < first + count; ++s) out.insert(out.end(), per_stream[s].begin(), per_stream[s].end());
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

nlohmann::json stats_json(const DeltaStats& d) {
  return {{"clean_total_bits", d.clean_total_bits}, {"ablated_total_bits", d.ablated_total_bits},
          {"delta_bits", d.delta_bits},             {"delta_bits_per_byte", d.delta_bits_per_byte},
          {"ci_low", d.ci_low},                     {"ci_high", d.ci_high}};
}

struct Loaded {
  model::LoadedModel m;
  std::string text;
  circuits::Mode mode;
  std::vector<circuits::Component> comps;  ///< the command's components, parsed once against the model
  std::unique_ptr<circuits::Reference> ref;
};

double total(const std::vector<double>& bits) {
  double t = 0;
  for (double b : bits) t += b;
  return t;
}

Loaded load(const AblationRun& run, const std::function<std::vector<circuits::Component>(const model::ModelConfig&)>& comps_of) {
  Loaded l{model::load_model(run.model.empty() ? default_model_path() : run.model, run.tokenizer), read_input(run.file),
           circuits::parse_mode(run.mode), {}, nullptr};
  CCC_CHECK(!l.text.empty(), run.file, ": empty input");
  l.comps = comps_of(l.m.config);
  if (l.mode != circuits::Mode::kZero) {
    const std::string ref_text = run.reference.empty() ? l.text : read_input(run.reference);
    l.ref = std::make_unique<circuits::Reference>(
        circuits::collect_reference(l.m, ref_text, l.comps, l.mode, run.streams, run.window, run.seed));
  }
  return l;
}

}  // namespace

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

std::vector<double> ablated_bits(model::LoadedModel& m, std::string_view text, const AblationRun& run,
                                 const std::vector<circuits::Component>& circuit, const circuits::Reference* ref,
                                 RunProgress* progress) {
  auto opt = codec_of(run);
  model::HookSet hooks;
  if (!circuit.empty())
    circuits::install_ablation(hooks, m.config, {circuit}, 0, circuits::parse_mode(run.mode), ref, run.seed);
  if (progress != nullptr) progress->attach(hooks);
  if (!circuit.empty() || progress != nullptr) opt.hooks = [&](int64_t) { return &hooks; };
  const auto per_stream = compress::segmented_token_bits(m, text, opt);
  if (progress != nullptr) progress->finish();
  return flatten(per_stream, 0, per_stream.size());
}

std::vector<std::vector<double>> sweep_bits(model::LoadedModel& m, std::string_view text, const AblationRun& run,
                                            const std::vector<circuits::Component>& set, const circuits::Reference* ref,
                                            SweepPath path, int64_t max_rows) {
  std::vector<std::vector<double>> out(set.size());
  auto opt = codec_of(run);
  const bool rolling = compress::resolve_window_policy(m.config, opt).second;
  ProgressLine progress("ablations", static_cast<int64_t>(set.size()), run.progress);
  int64_t done = 0;
  if (path == SweepPath::kNaive || !rolling) {
    for (size_t i = 0; i < set.size(); ++i) {
      out[i] = ablated_bits(m, text, run, {set[i]}, ref);
      progress.update(++done);
    }
    return out;
  }
  const int64_t B = static_cast<int64_t>(compress::stream_token_counts(m, text, opt).size());
  const int64_t group = std::max<int64_t>(1, max_rows / B);
  const auto mode = circuits::parse_mode(run.mode);
  if (path == SweepPath::kStacked) {
    for (size_t c0 = 0; c0 < set.size(); c0 += static_cast<size_t>(group)) {
      const size_t gc = std::min<size_t>(static_cast<size_t>(group), set.size() - c0);
      std::vector<std::vector<circuits::Component>> per_row;
      for (size_t i = 0; i < gc; ++i) per_row.push_back({set[c0 + i]});
      model::HookSet hooks;
      circuits::install_ablation(hooks, m.config, per_row, B, mode, ref, run.seed);
      opt.hooks = [&](int64_t) { return &hooks; };
      const auto per_stream = compress::segmented_token_bits(m, text, opt, static_cast<int64_t>(gc));
      for (size_t i = 0; i < gc; ++i) out[c0 + i] = flatten(per_stream, i * static_cast<size_t>(B), static_cast<size_t>(B));
      progress.update(done += static_cast<int64_t>(gc));
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
      std::vector<std::vector<circuits::Component>> per_row;
      for (size_t i : members[bi]) per_row.push_back({set[i]});
      circuits::install_ablation(hooks[bi], m.config, per_row, B, mode, ref, run.seed);
      branches.push_back({static_cast<int>(set[members[bi].front()].layer), static_cast<int64_t>(per_row.size()), &hooks[bi]});
    }
    const auto bits = compress::segmented_branched_bits(m, text, opt, branches, /*clean=*/false);
    for (size_t bi = 0; bi < members.size(); ++bi)
      for (size_t k = 0; k < members[bi].size(); ++k)
        out[members[bi][k]] = flatten(bits.branches[bi], k * static_cast<size_t>(B), static_cast<size_t>(B));
    progress.update(done += static_cast<int64_t>(pc));
  }
  return out;
}

void run_ablate(const AblateCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::parse_components(o.components, cfg); });
  const auto& comps = l.comps;
  int64_t tokens = 0;
  for (uint64_t c : compress::stream_token_counts(l.m, l.text, codec_of(o.run))) tokens += static_cast<int64_t>(c);
  std::vector<double> clean, abl;
  {
    RunProgress progress("ablate: clean run", tokens, o.run.progress);
    clean = ablated_bits(l.m, l.text, o.run, {}, nullptr, &progress);
  }
  {
    RunProgress progress("ablate: ablated run", tokens, o.run.progress);
    abl = ablated_bits(l.m, l.text, o.run, comps, l.ref.get(), &progress);
  }
  const auto d = delta_stats(clean, abl, static_cast<int64_t>(l.text.size()), o.run.bootstrap, o.run.seed);
  nlohmann::json j = stats_json(d);
  j["n_bytes"] = l.text.size();
  j["n_tokens"] = clean.size();
  j["mode"] = o.run.mode;
  j["components"] = nlohmann::json::array();
  for (const auto& c : comps) j["components"].push_back(c.name());
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = compress::describe_policy(l.m.config, codec_of(o.run));
  if (l.ref) j["reference_positions"] = l.ref->positions;
  if (o.per_token) {
    j["clean_bits"] = clean;
    j["ablated_bits"] = abl;
  }
  if (o.json || o.per_token) {
    stamp(j, "ablate");
    std::cout << j.dump(o.per_token ? -1 : 2) << "\n";
    return;
  }
  std::printf("model %s, %s ablation of %s on %s (%zu bytes, %s)\n", l.m.source.c_str(), o.run.mode.c_str(),
              o.components.c_str(), o.run.file.c_str(), l.text.size(), j["policy"].get<std::string>().c_str());
  std::printf("clean_total_bits    %14.3f  (%.4f bits/byte)\n", d.clean_total_bits, d.clean_total_bits / l.text.size());
  std::printf("ablated_total_bits  %14.3f  (%.4f bits/byte)\n", d.ablated_total_bits, d.ablated_total_bits / l.text.size());
  std::printf("delta_bits          %+14.3f  delta_bits_per_byte %+.4f  95%% CI [%+.4f, %+.4f]\n", d.delta_bits,
              d.delta_bits_per_byte, d.ci_low, d.ci_high);
}

void run_sweep(const SweepCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::sweep_set(o.over, cfg); });
  const auto& set = l.comps;
  const auto t0 = std::chrono::steady_clock::now();
  const auto clean = ablated_bits(l.m, l.text, o.run, {}, nullptr);
  const auto bits = sweep_bits(l.m, l.text, o.run, set, l.ref.get(), o.naive ? SweepPath::kNaive : SweepPath::kShared);
  const double secs = seconds_since(t0);
  const auto n = static_cast<int64_t>(l.text.size());
  nlohmann::json j;
  const double clean_total = total(clean);
  j["clean_total_bits"] = clean_total;
  j["n_bytes"] = n;
  j["mode"] = o.run.mode;
  j["over"] = o.over;
  j["batched"] = !o.naive;
  j["seconds"] = secs;
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = compress::describe_policy(l.m.config, codec_of(o.run));
  std::ostringstream csv;
  csv << "component,layer,index,delta_bits,delta_bits_per_byte,ci_low,ci_high\n";
  for (size_t i = 0; i < set.size(); ++i) {
    const auto d = delta_stats(clean, bits[i], n, o.run.bootstrap, o.run.seed);
    j["components"].push_back({{"component", set[i].name()}, {"layer", set[i].layer}, {"index", set[i].index},
                               {"delta_bits", d.delta_bits}, {"delta_bits_per_byte", d.delta_bits_per_byte},
                               {"ci_low", d.ci_low}, {"ci_high", d.ci_high}});
    char line[256];
    std::snprintf(line, sizeof line, "%s,%lld,%lld,%.6f,%.8f,%.8f,%.8f\n", set[i].name().c_str(), (long long)set[i].layer,
                  (long long)set[i].index, d.delta_bits, d.delta_bits_per_byte, d.ci_low, d.ci_high);
    csv << line;
  }
  if (!o.csv.empty()) write_file_atomic(o.csv, csv.str());
  if (!o.plot.empty()) {
    const std::string dat = o.plot + ".dat.tmp";
    std::ostringstream d;
    bool ok = false;
    if (o.over == "heads") {
      const auto H = l.m.config.n_heads;
      for (size_t i = 0; i < set.size(); ++i)
        d << j["components"][i]["delta_bits_per_byte"].get<double>() << ((static_cast<int64_t>(i) % H == H - 1) ? "\n" : " ");
      write_file_atomic(dat, d.str());
      ok = plot_png(o.plot, "set title 'delta bits per byte of each head (" + o.run.mode + " ablation)'\nset xlabel 'head'\n"
                            "set ylabel 'layer'\nset palette defined (0 'white', 1 'dark-red')\nset yrange [-0.5:" +
                                std::to_string(l.m.config.n_layers - 0.5) + "] reverse\nset xrange [-0.5:" +
                                std::to_string(H - 0.5) + "]\nset xtics 1\nset ytics 1\nplot " + gp_quote(dat) + " matrix with image notitle, '' matrix using 1:2:(sprintf('%.3f',$3)) with labels notitle",
                    200 + 70 * static_cast<int>(H), 140 + 50 * static_cast<int>(l.m.config.n_layers));
    } else {
      for (size_t i = 0; i < set.size(); ++i)
        d << i << " " << set[i].name() << " " << j["components"][i]["delta_bits_per_byte"].get<double>() << " "
          << j["components"][i]["ci_low"].get<double>() << " " << j["components"][i]["ci_high"].get<double>() << "\n";
      write_file_atomic(dat, d.str());
      ok = plot_png(o.plot, "set title 'delta bits per byte (" + o.run.mode + " ablation, 95% CI)'\nset style fill solid 0.6\n"
                            "set boxwidth 0.8\nset ylabel 'delta bits per byte'\nset grid y\n" +
                                std::string(set.size() <= 40 ? "set xtics rotate by -45\n" : "set xtics auto\n") +
                                "plot " + gp_quote(dat) + " using 1:3" + (set.size() <= 40 ? ":xtic(2)" : "") +
                                " with boxes notitle, '' using 1:3:4:5 with yerrorbars pt 0 lc rgb 'black' notitle");
    }
    std::error_code ec;
    fs::remove(dat, ec);
    if (!ok) std::fprintf(stderr, "warning: gnuplot failed; no %s\n", o.plot.c_str());
  }
  stamp(j, "sweep");
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model %s, %s sweep over %s on %s (%lld bytes, clean %.4f bits/byte), %.1f s %s\n", l.m.source.c_str(),
              o.run.mode.c_str(), o.over.c_str(), o.run.file.c_str(), (long long)n, clean_total / n, secs,
              o.naive ? "(one run per component)" : "(batched)");
  std::printf("%-12s %14s %14s %24s\n", "component", "delta_bits", "delta_bpb", "95% CI");
  for (const auto& c : j["components"])
    std::printf("%-12s %+14.3f %+14.5f   [%+.5f, %+.5f]\n", c["component"].get<std::string>().c_str(),
                c["delta_bits"].get<double>(), c["delta_bits_per_byte"].get<double>(), c["ci_low"].get<double>(),
                c["ci_high"].get<double>());
}

void run_discover(const DiscoverCmdOptions& o) {
  CCC_CHECK(o.method != "attribution" || o.run.mode != "resample",
            "discover --method attribution: use --mode zero or mean (a resample ablation has no single replacement "
            "value to expand around)");
  auto l = load(o.run, [&](const model::ModelConfig& cfg) {
    auto all = circuits::sweep_set("heads", cfg);
    if (!cfg.attn_only)
      for (const auto& c : circuits::sweep_set("mlps", cfg)) all.push_back(c);
    return all;
  });
  const auto& cfg = l.m.config;
  CCC_CHECK(!o.edges || compress::resolve_window_policy(cfg, codec_of(o.run)).second, l.m.source,
            ": --edges uses path patching, which needs the rolling window policy (a rotary model)");
  // reverse topological order: last layer first; in a layer the MLP (after attention) before the heads
  std::vector<circuits::Component> order;
  for (int64_t layer = cfg.n_layers - 1; layer >= 0; --layer) {
    if (!cfg.attn_only) order.push_back({circuits::Component::Kind::kMlp, layer, -1});
    for (int64_t h = cfg.n_heads - 1; h >= 0; --h) order.push_back({circuits::Component::Kind::kHead, layer, h});
  }
  const auto n = static_cast<double>(l.text.size());
  auto bits_without = [&](const std::vector<circuits::Component>& removed) {
    return total(ablated_bits(l.m, l.text, o.run, removed, l.ref.get()));
  };
  const auto t0 = std::chrono::steady_clock::now();
  const double clean = bits_without({});
  const double all = bits_without(order);
  std::vector<circuits::Component> removed;
  double current = clean;
  nlohmann::json steps = nlohmann::json::array();
  if (o.method == "attribution") {
    const auto opt = codec_of(o.run);
    const int64_t W = compress::resolve_window_policy(cfg, opt).first;
    const auto est =
        circuits::attribute(l.m, compress::stream_tokens(l.m, l.text, opt), W, order, l.mode, l.ref.get()).estimate(2);
    for (size_t i = 0; i < order.size(); ++i) {
      const bool remove = est[i] / n < o.threshold;
      steps.push_back({{"component", order[i].name()}, {"estimated_delta_bits_per_byte", est[i] / n}, {"removed", remove}});
      if (!o.json)
        std::fprintf(stderr, "  %-8s removal estimated at %+.5f bits/byte: %s\n", order[i].name().c_str(), est[i] / n,
                     remove ? "removed" : "kept");
      if (remove) removed.push_back(order[i]);
    }
    current = bits_without(removed);
  }
  ProgressLine progress("discover", static_cast<int64_t>(order.size()), o.json && o.run.progress);
  for (const auto& c : o.method == "acdc" ? order : std::vector<circuits::Component>{}) {
    progress.update(static_cast<int64_t>(steps.size()));
    auto trial = removed;
    trial.push_back(c);
    const double bits = bits_without(trial);
    const double cost = (bits - current) / n;
    const bool remove = cost < o.threshold;
    steps.push_back({{"component", c.name()}, {"delta_bits_per_byte", cost}, {"removed", remove}});
    if (!o.json) std::fprintf(stderr, "  %-8s removal costs %+.5f bits/byte: %s\n", c.name().c_str(), cost, remove ? "removed" : "kept");
    if (remove) {
      removed = trial;
      current = bits;
    }
  }
  if (o.method == "acdc") progress.update(static_cast<int64_t>(order.size()));
  std::vector<std::string> circuit, gone;
  for (const auto& c : order)
    (std::find(removed.begin(), removed.end(), c) == removed.end() ? circuit : gone).push_back(c.name());
  std::reverse(circuit.begin(), circuit.end());  // layer order
  // edges between the circuit's components (and to the logits), each priced alone by path patching
  nlohmann::json edges = nlohmann::json::array();
  int64_t edges_kept = 0;
  if (o.edges) {
    const auto opt = codec_of(o.run);
    std::vector<circuits::Component> kept;
    for (auto it = order.rbegin(); it != order.rend(); ++it)
      if (std::find(removed.begin(), removed.end(), *it) == removed.end()) kept.push_back(*it);
    std::vector<std::pair<circuits::Component, std::optional<circuits::Component>>> paths;
    for (const auto& s : kept) {
      for (const auto& r : kept) {
        try {
          circuits::check_path(s, r, cfg);
        } catch (const Error&) {
          continue;  // not downstream
        }
        paths.emplace_back(s, r);
      }
      paths.emplace_back(s, std::nullopt);
    }
    ProgressLine eprog("discover: edges", static_cast<int64_t>(paths.size()), o.run.progress);
    for (const auto& [s, r] : paths) {
      const auto b = circuits::path_patch_bits(l.m, l.text, opt, s, r, l.mode, l.ref.get(), o.run.seed);
      const double cost = (total(b.patched) - total(b.clean)) / n;
      const bool keep = cost >= o.threshold;
      edges_kept += keep;
      edges.push_back({{"sender", s.name()}, {"receiver", r ? r->name() : "logits"}, {"delta_bits_per_byte", cost}, {"kept", keep}});
      eprog.update(static_cast<int64_t>(edges.size()));
    }
  }
  nlohmann::json j = {{"components", circuit},
                      {"removed", gone},
                      {"size", circuit.size()},
                      {"candidates", order.size()},
                      {"threshold_bits_per_byte", o.threshold},
                      {"method", o.method},
                      {"mode", o.run.mode},
                      {"n_bytes", l.text.size()},
                      {"clean_total_bits", clean},
                      {"circuit_total_bits", current},
                      {"ablated_all_total_bits", all},
                      {"clean_bits_per_byte", clean / n},
                      {"circuit_bits_per_byte", current / n},
                      {"ablated_all_bits_per_byte", all / n},
                      {"faithfulness", all > clean ? (all - current) / (all - clean) : 1.0},
                      {"steps", steps},
                      {"seconds", seconds_since(t0)},
                      {"edges", o.edges ? edges : nlohmann::json(nullptr)},
                      {"edges_kept", o.edges ? nlohmann::json(edges_kept) : nlohmann::json(nullptr)},
                      {"model", l.m.source},
                      {"fingerprint", l.m.fingerprint},
                      {"policy", compress::describe_policy(cfg, codec_of(o.run))}};
  stamp(j, "discover");
  if (!o.out.empty()) write_file_atomic(o.out, j.dump(2) + "\n");
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::string names;
  for (const auto& c : circuit) names += (names.empty() ? "" : ",") + c;
  std::printf("circuit (%zu of %zu components, tau %.4f bits/byte, %s ablation, %s): %s\n", circuit.size(),
              order.size(), o.threshold, o.run.mode.c_str(), o.method.c_str(), names.c_str());
  std::printf("bits/byte: clean %.4f, circuit only %.4f, everything ablated %.4f; faithfulness %.3f%s%s\n", clean / n,
              current / n, all / n, j["faithfulness"].get<double>(), o.out.empty() ? "" : "; wrote ", o.out.c_str());
  if (o.edges) {
    std::printf("edges (path patching, each alone; kept when it costs >= tau): %lld of %zu kept\n", (long long)edges_kept,
                edges.size());
    for (const auto& e : edges)
      if (e["kept"].get<bool>())
        std::printf("  %-8s -> %-8s %+.4f bits/byte\n", e["sender"].get<std::string>().c_str(),
                    e["receiver"].get<std::string>().c_str(), e["delta_bits_per_byte"].get<double>());
  }
}

void run_attribute(const AttributeCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::sweep_set(o.over, cfg); });
  const auto& set = l.comps;
  const auto opt = codec_of(o.run);
  const int64_t W = compress::resolve_window_policy(l.m.config, opt).first;
  auto t0 = std::chrono::steady_clock::now();
  const auto terms = circuits::attribute(l.m, compress::stream_tokens(l.m, l.text, opt), W, set, l.mode, l.ref.get());
  const auto est = terms.estimate(o.order);
  const double est_s = seconds_since(t0);
  const double n = static_cast<double>(l.text.size());
  nlohmann::json j = {{"over", o.over}, {"mode", o.run.mode}, {"order", o.order}, {"n_bytes", l.text.size()},
                      {"window", W},       {"seconds", est_s}, {"model", l.m.source}, {"fingerprint", l.m.fingerprint}};
  std::vector<double> exact;
  double exact_s = 0;
  if (o.check) {
    t0 = std::chrono::steady_clock::now();
    const double c = total(ablated_bits(l.m, l.text, o.run, {}, nullptr));
    for (const auto& bits : sweep_bits(l.m, l.text, o.run, set, l.ref.get())) exact.push_back(total(bits) - c);
    exact_s = seconds_since(t0);
    j["spearman_rho"] = circuits::spearman(est, exact);
    j["exact_seconds"] = exact_s;
  }
  for (size_t i = 0; i < set.size(); ++i) {
    nlohmann::json c = {{"component", set[i].name()},
                        {"estimated_delta_bits", est[i]},
                        {"estimated_delta_bits_per_byte", est[i] / n},
                        {"linear_bits", terms.linear[i]},
                        {"curvature_bits", terms.curvature[i]}};
    if (o.check) {
      c["delta_bits"] = exact[i];
      c["delta_bits_per_byte"] = exact[i] / n;
    }
    j["components"].push_back(c);
  }
  stamp(j, "attribute");
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("attribution patching (%s, order %d, windows of W every W/2) over %s on %s: %zu components in %.2f s%s\n",
              o.run.mode.c_str(), o.order, o.over.c_str(), o.run.file.c_str(), set.size(), est_s,
              o.check ? "" : " (--check compares with the exact sweep)");
  std::printf("%-12s %16s%s\n", "component", "est_delta_bpb", o.check ? "   exact_delta_bpb" : "");
  for (size_t i = 0; i < set.size(); ++i) {
    if (o.check) std::printf("%-12s %+16.5f %+17.5f\n", set[i].name().c_str(), est[i] / n, exact[i] / n);
    else std::printf("%-12s %+16.5f\n", set[i].name().c_str(), est[i] / n);
  }
  if (o.check)
    std::printf("Spearman rho (estimate vs exact) = %.3f; exact sweep %.2f s, i.e. %.1fx the estimate's time\n",
                j["spearman_rho"].get<double>(), exact_s, exact_s / std::max(1e-9, est_s));
}

void run_patch(const PatchCmdOptions& o) {
  std::optional<circuits::Component> receiver;
  auto l = load(o.run, [&](const model::ModelConfig& cfg) {
    const auto s = circuits::parse_components(o.sender, cfg);
    CCC_CHECK(s.size() == 1, "--sender ", o.sender, ": expected one component, got ", s.size());
    if (o.receiver != "logits") {
      const auto r = circuits::parse_components(o.receiver, cfg);
      CCC_CHECK(r.size() == 1, "--receiver ", o.receiver, ": expected one component or logits, got ", r.size());
      receiver = r[0];
    }
    circuits::check_path(s[0], receiver, cfg);
    return s;
  });
  const auto opt = codec_of(o.run);
  CCC_CHECK(compress::resolve_window_policy(l.m.config, opt).second, l.m.source,
            ": path patching needs the rolling window policy (a rotary model); this model is scored in strided windows");
  int64_t tokens = 0;
  for (uint64_t c : compress::stream_token_counts(l.m, l.text, opt)) tokens += static_cast<int64_t>(c);
  RunProgress progress("patch", tokens, o.run.progress);
  const auto bits = circuits::path_patch_bits(l.m, l.text, opt, l.comps[0], receiver, l.mode, l.ref.get(), o.run.seed,
                                              [&](model::HookSet& hs) { progress.attach(hs, "blocks.0.hook_resid_pre"); });
  progress.finish();
  const auto d = delta_stats(bits.clean, bits.patched, static_cast<int64_t>(l.text.size()), o.run.bootstrap, o.run.seed);
  nlohmann::json j = stats_json(d);
  j["patched_total_bits"] = j["ablated_total_bits"];
  j.erase("ablated_total_bits");
  j["sender"] = l.comps[0].name();
  j["receiver"] = receiver ? receiver->name() : "logits";
  j["n_bytes"] = l.text.size();
  j["n_tokens"] = bits.clean.size();
  j["mode"] = o.run.mode;
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = compress::describe_policy(l.m.config, opt);
  if (o.per_token) {
    j["clean_bits"] = bits.clean;
    j["patched_bits"] = bits.patched;
  }
  if (o.json || o.per_token) {
    stamp(j, "patch");
    std::cout << j.dump(o.per_token ? -1 : 2) << "\n";
    return;
  }
  std::printf("model %s, path %s -> %s (%s ablation of the sender, everything else frozen) on %s (%zu bytes, %s)\n",
              l.m.source.c_str(), j["sender"].get<std::string>().c_str(), j["receiver"].get<std::string>().c_str(),
              o.run.mode.c_str(), o.run.file.c_str(), l.text.size(), j["policy"].get<std::string>().c_str());
  std::printf("clean_total_bits    %14.3f  (%.4f bits/byte)\n", d.clean_total_bits, d.clean_total_bits / l.text.size());
  std::printf("patched_total_bits  %14.3f  (%.4f bits/byte)\n", d.ablated_total_bits, d.ablated_total_bits / l.text.size());
  std::printf("delta_bits          %+14.3f  delta_bits_per_byte %+.4f  95%% CI [%+.4f, %+.4f]\n", d.delta_bits,
              d.delta_bits_per_byte, d.ci_low, d.ci_high);
}

void bench_sweep(const BenchSweepOptions& o, std::ostream& out) {
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  std::string text;
  if (!o.file.empty()) {
    text = read_file(o.file);
  } else {
    for (const auto& [name, t] : held_out_sources(o.corpora_dir)) text += t.substr(0, std::min<size_t>(t.size(), 4096));
  }
  if (static_cast<int64_t>(text.size()) > o.bytes) text.resize(static_cast<size_t>(o.bytes));
  AblationRun run;
  const auto set = circuits::sweep_set("heads", m.config);
  // interleaved: the naive baseline between the two batched paths
  auto timed = [&](SweepPath path, double* secs) {
    const auto t0 = std::chrono::steady_clock::now();
    auto bits = sweep_bits(m, text, run, set, nullptr, path);
    *secs = seconds_since(t0);
    return bits;
  };
  double t_shared = 0, t_naive = 0, t_stacked = 0;
  const auto shared = timed(SweepPath::kShared, &t_shared);
  const auto naive = timed(SweepPath::kNaive, &t_naive);
  const auto stacked = timed(SweepPath::kStacked, &t_stacked);
  double diff_shared = 0, diff_stacked = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    diff_shared = std::max(diff_shared, std::abs(total(shared[i]) - total(naive[i])));
    diff_stacked = std::max(diff_stacked, std::abs(total(stacked[i]) - total(naive[i])));
  }
  char line[1024];
  std::snprintf(line, sizeof line,
                "bench sweep: %s, zero ablation of each of %zu heads, %zu bytes (%s)\n"
                "  %-52s %8.2f s  %5.2fx  max |delta_bits - naive| = %.2e bits\n"
                "  %-52s %8.2f s  %5.2fx  max |delta_bits - naive| = %.2e bits\n"
                "  %-52s %8.2f s  1.00x  (baseline)\n"
                "  targets: >= 5x, max difference <= 1e-3 bits per component\n",
                m.source.c_str(), set.size(), text.size(), compress::describe_policy(m.config, {}).c_str(),
                "batched, upstream shared (blocks before a head once)", t_shared, t_naive / t_shared, diff_shared,
                "batched, stacked rows (every block per head)", t_stacked, t_naive / t_stacked, diff_stacked,
                "naive (one run per head)", t_naive);
  out << line;
}

}  // namespace ccc::experiments
