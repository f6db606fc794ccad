#include "experiments/commands/ablate_cmd.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "circuits/attribution.h"
#include "circuits/discovery.h"
#include "experiments/commands/ablation_run.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/scoring/streams.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

using circuits::DeltaStats;
using circuits::delta_stats;
using circuits::total_bits;

namespace {

// The sweep's PNG: a layer x head heatmap for heads, else bars with their CIs — the 40 largest Δ, sorted,
// when the set is larger (a neuron sweep) — titled with the model and the input.
void write_sweep_plot(const SweepCmdOptions& o, const Loaded& l, const nlohmann::json& j) {
  const auto& set = l.comps;
  const std::string about = fs::path(l.m.source).filename().string() + " on " + fs::path(o.run.file).filename().string() +
                            ", " + o.run.mode + " ablation" + (l.mask ? ", positions " + o.run.positions.describe() : "");
  Plot plot;
  std::ostringstream d;
  bool ok = false;
  if (o.over == "heads") {
    const auto H = l.m.config.n_heads;
    for (size_t i = 0; i < set.size(); ++i)
      d << j["components"][i]["delta_bits_per_byte"].get<double>() << ((static_cast<int64_t>(i) % H == H - 1) ? "\n" : " ");
    const std::string dat = plot.data("heads.dat", d.str());
    ok = plot.render(o.plot, "set title " + gp_quote("delta bits per byte of each head: " + about) + " noenhanced\nset xlabel 'head'\n"
                          "set ylabel 'layer'\nset palette defined (0 'white', 1 'dark-red')\nset yrange [-0.5:" +
                              std::to_string(l.m.config.n_layers - 0.5) + "] reverse\nset xrange [-0.5:" +
                              std::to_string(H - 0.5) + "]\nset xtics 1\nset ytics 1\nplot " + dat + " matrix with image notitle, '' matrix using 1:2:(sprintf('%.3f',$3)) with labels notitle",
                  std::max<int>(500, 200 + 70 * static_cast<int>(H)), 140 + 50 * static_cast<int>(l.m.config.n_layers), o.force);
  } else {
    constexpr size_t kTop = 40;
    std::vector<size_t> order(set.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (set.size() > kTop) {
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return j["components"][a]["delta_bits_per_byte"].get<double>() > j["components"][b]["delta_bits_per_byte"].get<double>();
      });
      order.resize(kTop);
    }
    for (size_t k = 0; k < order.size(); ++k) {
      const size_t i = order[k];
      d << k << " " << set[i].name() << " " << j["components"][i]["delta_bits_per_byte"].get<double>() << " "
        << j["components"][i]["ci_low"].get<double>() << " " << j["components"][i]["ci_high"].get<double>() << "\n";
    }
    const std::string what = set.size() > kTop ? "the " + std::to_string(kTop) + " largest of " + std::to_string(set.size())
                                               : std::to_string(set.size()) + " components";
    const std::string dat = plot.data("components.dat", d.str());
    ok = plot.render(o.plot, "set title " + gp_quote("delta bits per byte with 95% CI, " + what + ": " + about) +
                                 " noenhanced\nset style fill solid 0.6\nset boxwidth 0.8\nset ylabel 'delta bits per byte'\n"
                                 "set grid y\nset xtics rotate by -45 noenhanced\nplot " + dat +
                                 " using 1:3:xtic(2) with boxes notitle, '' using 1:3:4:5 with yerrorbars pt 0 lc rgb 'black' notitle",
                  900, 500, o.force);
  }
  if (!ok) std::fprintf(stderr, "warning: gnuplot failed; no %s\n", o.plot.c_str());
}

}  // namespace

void run_ablate(const AblateCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::parse_components(o.components, cfg); });
  const int64_t tokens = token_count(l, o.run);  // the input tokenised once for both progress lines
  const auto clean = bits_with_progress(l, o.run, "ablate: clean run", tokens, {}, nullptr);
  const auto abl = bits_with_progress(l, o.run, "ablate: ablated run", tokens, l.comps, l.ref.get());
  const auto d = masked_delta(l, clean, abl, o.run);
  nlohmann::json j = stats_json(d);
  j["n_bytes"] = l.text.size();
  j["n_tokens"] = clean.size();
  j["positions"] = positions_json(l, o.run, clean.size());
  j["mode"] = o.run.mode;
  j["components"] = nlohmann::json::array();
  for (const auto& c : l.comps) j["components"].push_back(c.name());
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = model::describe_policy(l.m.config, stream_options(o.run));
  j["streams"] = resolved_streams(l, o.run);
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
              o.components.c_str(), o.run.file.c_str(), l.text.size(), scoring_text(l, o.run).c_str());
  print_positions(l, o.run);
  print_delta("ablated_total_bits", d, static_cast<size_t>(counted_bytes(l)));
}

void run_sweep(const SweepCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::sweep_set(o.over, cfg); });
  const auto& set = l.comps;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> clean;  // the clean run: one more unit of the sweep's schedule
  const auto path = o.naive ? circuits::SweepPath::kNaive : circuits::SweepPath::kShared;
  std::unique_ptr<circuits::SweepJournal> journal;
  if (!o.partial.empty()) {
    journal = std::make_unique<circuits::SweepJournal>(o.partial, sweep_key(l, o.run, set, path));
    if (journal->resumed() > 0 && !o.json)
      std::fprintf(stderr, "%s: resuming: %lld passes already done\n", o.partial.c_str(), (long long)journal->resumed());
  }
  const auto bits = sweep_with_progress(l, o.run, set, path, journal.get(), &clean);
  const double secs = seconds_since(t0);
  const auto n = static_cast<int64_t>(l.text.size());
  nlohmann::json j;
  const double clean_total = total_bits(l.mask ? circuits::masked(clean, *l.mask) : clean);
  j["clean_total_bits"] = clean_total;
  j["n_bytes"] = n;
  j["positions"] = positions_json(l, o.run, clean.size());
  j["mode"] = o.run.mode;
  j["over"] = o.over;
  j["batched"] = !o.naive;
  j["seconds"] = secs;
  j["ranks"] = dist::size();
  {  // what the ranks handed to MPI, summed over ranks (0 in one process)
    std::vector<double> t{static_cast<double>(dist::traffic().bytes), static_cast<double>(dist::traffic().calls)};
    dist::allreduce_sum(t);
    j["mpi_bytes"] = static_cast<int64_t>(t[0]);
    j["mpi_calls"] = static_cast<int64_t>(t[1]);
  }
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = model::describe_policy(l.m.config, stream_options(o.run));
  j["streams"] = resolved_streams(l, o.run);
  std::ostringstream csv;
  csv << "component,layer,index,delta_bits,delta_bits_per_byte,ci_low,ci_high\n";
  for (size_t i = 0; i < set.size(); ++i) {
    const auto d = masked_delta(l, clean, bits[i], o.run);
    j["components"].push_back({{"component", set[i].name()}, {"layer", set[i].layer}, {"index", set[i].index},
                               {"delta_bits", d.delta_bits}, {"delta_bits_per_byte", d.delta_bits_per_byte},
                               {"ci_low", d.ci_low}, {"ci_high", d.ci_high}});
    char line[256];
    std::snprintf(line, sizeof line, "%s,%lld,%lld,%.6f,%.8f,%.8f,%.8f\n", set[i].name().c_str(), (long long)set[i].layer,
                  (long long)set[i].index, d.delta_bits, d.delta_bits_per_byte, d.ci_low, d.ci_high);
    csv << line;
  }
  if (!o.csv.empty()) write_file_atomic(o.csv, csv.str(), o.force);
  if (!o.plot.empty()) write_sweep_plot(o, l, j);
  if (journal) journal->remove();  // the outputs are written: the partial results are no longer needed
  stamp(j, "sweep");
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model %s, %s sweep over %s on %s (%lld bytes, %s, clean %.4f bits/byte), %.1f s %s\n", l.m.source.c_str(),
              o.run.mode.c_str(), o.over.c_str(), o.run.file.c_str(), (long long)n, scoring_text(l, o.run).c_str(),
              clean_total / static_cast<double>(counted_bytes(l)), secs, o.naive ? "(one run per component)" : "(batched)");
  print_positions(l, o.run);
  std::printf("%-12s %14s %14s %24s\n", "component", "delta_bits", "delta_bpb", "95% CI");
  for (const auto& c : j["components"])
    std::printf("%-12s %+14.3f %+14.5f   [%+.5f, %+.5f]\n", c["component"].get<std::string>().c_str(),
                c["delta_bits"].get<double>(), c["delta_bits_per_byte"].get<double>(), c["ci_low"].get<double>(),
                c["ci_high"].get<double>());
}

namespace {

nlohmann::json discovery_json(const circuits::Discovery& d, const DiscoverCmdOptions& o, const Loaded& l) {
  const auto n = static_cast<double>(d.n_bytes);
  auto names = [](const std::vector<circuits::Component>& v) {
    std::vector<std::string> out;
    for (const auto& c : v) out.push_back(c.name());
    return out;
  };
  nlohmann::json steps = nlohmann::json::array(), edges = nlohmann::json::array();
  for (const auto& s : d.steps)
    steps.push_back({{"component", s.component.name()},
                     {s.estimated ? "estimated_delta_bits_per_byte" : "delta_bits_per_byte", s.delta_bits_per_byte},
                     {"removed", s.removed}});
  int64_t edges_kept = 0;
  for (const auto& e : d.edges) {
    edges_kept += e.kept;
    edges.push_back({{"sender", e.sender.name()},
                     {"receiver", e.receiver ? e.receiver->name() : "logits"},
                     {"delta_bits_per_byte", e.delta_bits_per_byte},
                     {"kept", e.kept}});
  }
  return {{"components", names(d.circuit)},
          {"positions", positions_json(l, o.run, static_cast<size_t>(token_count(l, o.run)))},
          {"removed", names(d.removed)},
          {"size", d.circuit.size()},
          {"candidates", d.candidates.size()},
          {"threshold_bits_per_byte", o.threshold},
          {"method", o.method},
          {"mode", o.run.mode},
          {"n_bytes", d.n_bytes},
          {"clean_total_bits", d.clean_total_bits},
          {"circuit_total_bits", d.circuit_total_bits},
          {"ablated_all_total_bits", d.ablated_all_total_bits},
          {"clean_bits_per_byte", d.clean_total_bits / n},
          {"circuit_bits_per_byte", d.circuit_total_bits / n},
          {"ablated_all_bits_per_byte", d.ablated_all_total_bits / n},
          {"faithfulness", d.faithfulness()},
          {"steps", steps},
          {"edges", o.edges ? edges : nlohmann::json(nullptr)},
          {"edges_kept", o.edges ? nlohmann::json(edges_kept) : nlohmann::json(nullptr)},
          {"model", l.m.source},
          {"fingerprint", l.m.fingerprint},
          {"policy", model::describe_policy(l.m.config, stream_options(o.run))},
                      {"streams", resolved_streams(l, o.run)}};
}

}  // namespace

void run_discover(const DiscoverCmdOptions& o) {
  circuits::DiscoverOptions opt;
  opt.threshold = o.threshold;
  opt.method = circuits::parse_discover_method(o.method);
  opt.edges = o.edges;
  CCC_CHECK(opt.method != circuits::DiscoverMethod::kAttribution || o.run.mode != "resample",
            "discover --method attribution: use --mode zero or mean (a resample ablation has no single replacement "
            "value to expand around)");
  CCC_CHECK(o.run.positions.empty() || opt.method == circuits::DiscoverMethod::kAcdc,
            "discover --method attribution does not take --positions (its estimate sums every position); use acdc");
  auto l = load(o.run, circuits::discovery_components);
  if (l.mask) opt.mask = &*l.mask;
  ProgressLine progress("discover", static_cast<int64_t>(l.comps.size()), o.json && o.run.progress);
  std::unique_ptr<ProgressLine> edge_progress;
  circuits::DiscoverCallbacks cb;
  cb.on_step = [&](const circuits::DiscoveryStep& s) {
    if (o.json) return;
    if (s.estimated)
      std::fprintf(stderr, "  %-8s removal estimated at %+.5f bits/byte: %s\n", s.component.name().c_str(),
                   s.delta_bits_per_byte, s.removed ? "removed" : "kept");
    else
      std::fprintf(stderr, "  %-8s removal costs %+.5f bits/byte: %s\n", s.component.name().c_str(),
                   s.delta_bits_per_byte, s.removed ? "removed" : "kept");
  };
  cb.candidates = [&](int64_t done, int64_t) { progress.update(done); };
  cb.edges = [&](int64_t done, int64_t total) {
    if (!edge_progress) edge_progress = std::make_unique<ProgressLine>("discover: edges", total, o.run.progress);
    edge_progress->update(done);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const auto d = circuits::discover(l.m, l.text, o.run.scoring(), l.ref.get(), opt, cb);
  nlohmann::json j = discovery_json(d, o, l);
  j["seconds"] = seconds_since(t0);
  stamp(j, "discover");
  if (!o.out.empty()) write_file_atomic(o.out, j.dump(2) + "\n", o.force);
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::string names;
  for (const auto& c : d.circuit) names += (names.empty() ? "" : ",") + c.name();
  const double n = static_cast<double>(d.n_bytes);
  print_positions(l, o.run);
  std::printf("circuit (%zu of %zu components, tau %.4f bits/byte, %s ablation, %s; %s): %s\n", d.circuit.size(),
              d.candidates.size(), o.threshold, o.run.mode.c_str(), o.method.c_str(), scoring_text(l, o.run).c_str(),
              names.c_str());
  std::printf("bits/byte: clean %.4f, circuit only %.4f, everything ablated %.4f; faithfulness %.3f%s%s\n",
              d.clean_total_bits / n, d.circuit_total_bits / n, d.ablated_all_total_bits / n, d.faithfulness(),
              o.out.empty() ? "" : "; wrote ", o.out.c_str());
  if (o.edges) {
    std::printf("edges (path patching, each alone; kept when it costs >= tau): %lld of %zu kept\n",
                (long long)j["edges_kept"].get<int64_t>(), d.edges.size());
    for (const auto& e : d.edges)
      if (e.kept)
        std::printf("  %-8s -> %-8s %+.4f bits/byte\n", e.sender.name().c_str(),
                    e.receiver ? e.receiver->name().c_str() : "logits", e.delta_bits_per_byte);
  }
}

void run_attribute(const AttributeCmdOptions& o) {
  auto l = load(o.run, [&](const model::ModelConfig& cfg) { return circuits::sweep_set(o.over, cfg); });
  const auto& set = l.comps;
  const auto opt = stream_options(o.run);
  const int64_t W = model::resolve_window_policy(l.m.config, opt).first;
  auto t0 = std::chrono::steady_clock::now();
  const auto terms = circuits::attribute(l.m, model::stream_tokens(l.m, l.text, opt), W, set, l.mode, l.ref.get(),
                                         l.mask ? &*l.mask : nullptr);
  const auto est = terms.estimate(o.order);
  const double est_s = seconds_since(t0);
  const double n = static_cast<double>(counted_bytes(l));
  nlohmann::json j = {{"over", o.over}, {"mode", o.run.mode}, {"order", o.order}, {"n_bytes", l.text.size()},
                      {"window", W},       {"seconds", est_s}, {"model", l.m.source}, {"fingerprint", l.m.fingerprint},
                      {"positions", positions_json(l, o.run, static_cast<size_t>(token_count(l, o.run)))}};
  std::vector<double> exact;
  double exact_s = 0;
  if (o.check) {
    t0 = std::chrono::steady_clock::now();
    const double c = masked_total(l, circuits::ablated_bits(l.m, l.text, o.run.scoring(), {}, nullptr));
    for (const auto& bits : sweep_with_progress(l, o.run, set, circuits::SweepPath::kShared))
      exact.push_back(masked_total(l, bits) - c);
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
  print_positions(l, o.run);
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

}  // namespace ccc::experiments
