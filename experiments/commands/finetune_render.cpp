// `ccc experiment finetune`: experiments::run_finetune_effects on the default model (or -m) and the
// present corpora, and the rendering of its Result and detail.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/finetune_effects.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/training/corpus.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

std::string section(const Result& r, const FinetuneEffectsDetail& d, const FinetuneEffectsOptions& c, const std::string& input) {
  std::ostringstream md;
  md << "## finetune: are fine-tuning's trade-offs circuits re-weighted?\n\n" << r.hypothesis << "\n\nModel `" << r.model
     << "` fine-tuned on **" << c.target << "**; " << input << ", seed " << r.seed << "; subsets "
     << nlohmann::json(c.subsets).dump() << ", snapshots at steps " << nlohmann::json(c.steps).dump() << " (batch " << c.batch_size
     << " x " << c.seq_len << " bytes, lr " << c.lr << "); circuit table: each of " << d.components.size()
     << " heads and MLPs " << (c.mode == circuits::Mode::kMean ? "mean" : "zero") << "-ablated alone on each of " << d.domains.size()
     << " domains.\n\n" << measurement_table(r) << "\n**Verdict: " << to_string(r.verdict) << "** — " << r.verdict_rule
     << "\n\n![trade-off frontier](tradeoff.png)\n\n![circuit shift against the domain's change](shift_vs_delta.png)\n\n"
     << "| params | steps | target Δ bits/byte | others Δ bits/byte (mean) | exchange rate (bits lost per bit gained) | frozen max abs diff | train s | eval s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& run : d.runs) {
    md << "| " << run.params << " | " << run.steps << " | " << num(run.delta_bits_per_byte[0], 4) << " | " << num(run.other_delta_mean, 4) << " | "
       << (std::isfinite(run.exchange_rate) ? num(run.exchange_rate, 3) : std::string("-")) << " | " << run.frozen_max_abs_diff << " | " << num(run.train_seconds, 1)
       << " | " << num(run.eval_seconds, 1) << " |\n";
  }
  // the largest shifts of the longest all-parameter run (or the last run)
  const FinetuneRun* top = &d.runs.back();
  for (const auto& run : d.runs)
    if (run.params == "all" && run.steps == c.steps.back()) top = &run;
  struct Row {
    double shift, lo, hi;
    size_t c, k;
  };
  std::vector<Row> rows;
  for (size_t ci = 0; ci < d.components.size(); ++ci)
    for (size_t k = 0; k < d.domains.size(); ++k)
      rows.push_back({top->shift.shift[ci][k], top->shift.ci_low[ci][k], top->shift.ci_high[ci][k], ci, k});
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return std::fabs(a.shift) > std::fabs(b.shift); });
  md << "\nLargest circuit shifts (" << top->params << ", " << top->steps << " steps): Δbits per byte of ablating the component, "
     << "after − before, 95% block-bootstrap CI.\n\n| component | domain | before | after | shift [95% CI] |\n|---|---|---:|---:|---:|\n";
  for (size_t i = 0; i < std::min<size_t>(12, rows.size()); ++i) {
    const auto& w = rows[i];
    md << "| " << d.components[w.c] << " | " << d.domains[w.k] << (w.k == 0 ? " (target)" : "") << " | "
       << num(d.base.delta_bits_per_byte[w.c][w.k], 4) << " | " << num(top->table.delta_bits_per_byte[w.c][w.k], 4) << " | "
       << num(w.shift, 4) << " [" << num(w.lo, 4) << ", " << num(w.hi, 4) << "] |\n";
  }
  if (!d.units_before.empty()) {
    md << "\nUnit classes (`ccc units` rules, every MLP's hook_post, automatic features; " << d.units_rows
       << " rows of held-out text), base vs " << d.compared << ":\n\n| class | base | fine-tuned | base (null) | fine-tuned (null) |\n|---|---:|---:|---:|---:|\n";
    std::map<std::string, int> classes;
    for (const auto* m : {&d.units_before, &d.units_after}) for (const auto& [k, v] : *m) classes[k] = 1;
    auto at = [](const std::map<std::string, int64_t>& m, const std::string& k) { return m.count(k) ? m.at(k) : int64_t{0}; };
    for (const auto& [k, one] : classes)
      md << "| " << k << " | " << at(d.units_before, k) << " | " << at(d.units_after, k) << " | " << at(d.units_null_before, k) << " | "
         << at(d.units_null_after, k) << " |\n";
  }
  if (!d.winners_before.empty()) {
    md << "\nWho wins the target's tokens (the competition experiment on its held-out head; share of the tokens with a winner), base vs "
       << d.compared << ":\n\n| component | base | fine-tuned |\n|---|---:|---:|\n";
    for (size_t i = 0; i < std::min<size_t>(6, d.winners_before.size()); ++i) {
      const auto& [comp, share] = d.winners_before[i];
      double after = 0;
      for (const auto& [k, v] : d.winners_after)
        if (k == comp) after = v;
      md << "| " << comp << " | " << num(share, 3) << " | " << num(after, 3) << " |\n";
    }
  }
  if (d.switch_point.size() == 2)
    md << "\nCopy-vs-recall switch point (planted copies at which the copy wins half the positions; -1 = never): base "
       << num(d.switch_point[0].value, 2) << " [" << num(d.switch_point[0].ci_low, 2) << ", " << num(d.switch_point[0].ci_high, 2) << "], "
       << d.compared << " " << num(d.switch_point[1].value, 2) << " [" << num(d.switch_point[1].ci_low, 2) << ", "
       << num(d.switch_point[1].ci_high, 2) << "].\n";
  for (const auto& note : d.mechanism_notes) md << "\n" << note << "\n";
  if (d.has_crosscoder) {
    const auto& x = d.crosscoder;
    md << "\nModel diffing: a crosscoder (topk, k " << x.sae.k << ", " << x.d_sae << " latents at " << x.hook << ", " << x.train_rows
       << " training rows) over the base and " << d.compared << ". Latents by relative decoder norm (B = fine-tuned), after the "
       "latent-scaling correction (before it: base-only " << x.a_only_raw << ", fine-tune-only " << x.b_only_raw << "):\n\n"
       << "| shared | base-only | fine-tune-only | in between | dead | explained variance base / fine-tuned |\n|---:|---:|---:|---:|---:|---|\n| "
       << x.shared << " | " << x.a_only << " | " << x.b_only << " | " << x.between << " | " << x.dead << " | " << num(x.explained_variance_a, 3)
       << " / " << num(x.explained_variance_b, 3) << " |\n\nBits the groups carry in the fine-tuned model (" << x.eval_bytes
       << " held-out bytes): clean " << num(x.bits_clean_b, 1) << ", crosscoder spliced in " << num(x.bits_splice_b, 1)
       << "; removing the shared latents costs " << num(x.delta_bits_shared, 1) << " bits, the base-only " << num(x.delta_bits_a_only, 1)
       << ", the fine-tune-only " << num(x.delta_bits_b_only, 1) << ".\n";
  }
  return md.str();
}

}  // namespace

void run_finetune_experiment_cmd(const ExperimentCmdOptions& o) {
  const std::string base = o.model.empty() ? default_model_path() : o.model;
  const std::string dir = corpora_dir_or_default(o.corpora_dir);
  // the known corpora present, the target among them; a directory of other corpora: every <name>.txt in it
  auto names = model::present_corpora(dir);
  const std::string target = o.corpus.empty() ? FinetuneEffectsOptions{}.target : o.corpus;
  if (std::find(names.begin(), names.end(), target) == names.end()) names.insert(names.begin(), target);
  if (names.size() < 2) {
    names.clear();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".txt") names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
  }
  CCC_CHECK(names.size() >= 2, "experiment finetune: needs the target and at least one other corpus in ", dir,
            " (run ./setup.sh or pass --corpora DIR)");
  const auto corpora = model::load_corpora(dir, names);
  FinetuneEffectsOptions c;
  c.seed = o.seed;
  c.mode = circuits::parse_mode(o.mode);
  CCC_CHECK(c.mode == circuits::Mode::kMean || c.mode == circuits::Mode::kZero, "experiment finetune: --mode mean or zero");
  c.streams = o.streams;
  {
    const auto cfg = model::load_model(base).config;
    c.subsets = {"all", "attn", "mlp", "layers:" + std::to_string(cfg.n_layers / 2)};
  }
  if (o.quick) {  // two subsets, three short snapshots, small texts: the same schema in about a minute
    c.subsets = {"all", "mlp"};
    c.steps = {4, 8, 12}, c.batch_size = 4, c.seq_len = 128, c.eval_bytes = 256, c.resamples = 200, c.null_draws = 200;
    c.units_bytes = 256, c.crosscoder_train_bytes = 2048, c.crosscoder.steps = 200, c.crosscoder.expansion = 4;
    c.mechanism_bytes = 512, c.copy_recall_positions = 8;
  }
  if (!o.corpus.empty()) c.target = o.corpus;
  if (!o.params.empty()) c.subsets = o.params;
  if (!o.steps.empty()) c.steps = o.steps;
  if (o.eval_bytes > 0) c.eval_bytes = o.eval_bytes;
  if (o.null_draws > 0) c.null_draws = o.null_draws;
  OutputDir out(o.out, o.force);
  c.snapshot_dir = (fs::path(out.temp_dir()) / "models").string();
  c.progress = phase_progress("finetune", o.progress);
  if (o.progress)
    std::fprintf(stderr, "finetune: %s on %s, %zu subsets x %zu snapshots, %zu domains x %lld bytes\n", base.c_str(), c.target.c_str(),
                 c.subsets.size(), c.steps.size(), corpora.size(), (long long)c.eval_bytes);
  const auto t0 = std::chrono::steady_clock::now();
  FinetuneEffectsDetail d;
  Result r = run_finetune_effects(base, corpora, c, &d);
  auto m = model::load_model(base);
  ExperimentInput in;
  in.name = "the held-out head of " + std::to_string(corpora.size()) + " corpora (" + std::to_string(c.eval_bytes) + " bytes each)";
  for (const auto& cp : corpora) in.text += cp.sha256;  // the corpora's identity (their splits are fixed by their bytes)
  nlohmann::json j = result_json(r, m, in, o);
  nlohmann::json runs = nlohmann::json::array();
  std::ostringstream trade, shift;
  trade << "params,steps,domain,delta_bits_per_byte,bits_per_byte_before,bits_per_byte_after\n";
  shift << "params,steps,component,domain,delta_bits_before,delta_bits_after,shift,ci_low,ci_high\n";
  for (const auto& run : d.runs) {
    nlohmann::json others = nlohmann::json::object(), cs = nlohmann::json::object();
    for (size_t k = 0; k < d.domains.size(); ++k) {
      if (k > 0) others[d.domains[k]] = run.delta_bits_per_byte[k];
      trade << run.params << "," << run.steps << "," << d.domains[k] << "," << num(run.delta_bits_per_byte[k], 6) << ","
            << num(d.base.clean_bits_per_byte[k], 6) << "," << num(run.table.clean_bits_per_byte[k], 6) << "\n";
    }
    for (size_t ci = 0; ci < d.components.size(); ++ci) {
      nlohmann::json per = nlohmann::json::object();
      for (size_t k = 0; k < d.domains.size(); ++k) {
        per[d.domains[k]] = {{"before", d.base.delta_bits_per_byte[ci][k]}, {"after", run.table.delta_bits_per_byte[ci][k]},
                             {"shift", run.shift.shift[ci][k]}, {"ci_low", run.shift.ci_low[ci][k]}, {"ci_high", run.shift.ci_high[ci][k]}};
        shift << run.params << "," << run.steps << "," << d.components[ci] << "," << d.domains[k] << ","
              << num(d.base.delta_bits_per_byte[ci][k], 6) << "," << num(run.table.delta_bits_per_byte[ci][k], 6) << ","
              << num(run.shift.shift[ci][k], 6) << "," << num(run.shift.ci_low[ci][k], 6) << "," << num(run.shift.ci_high[ci][k], 6) << "\n";
      }
      cs[d.components[ci]] = per;
    }
    std::string name = run.params;
    std::replace(name.begin(), name.end(), ':', '-');
    std::replace(name.begin(), name.end(), ',', '_');
    runs.push_back({{"params", run.params}, {"steps", run.steps}, {"target_delta_bits_per_byte", run.delta_bits_per_byte[0]},
                    {"other_delta_bits_per_byte", others}, {"other_delta_bits_per_byte_mean", run.other_delta_mean},
                    {"exchange_rate", std::isfinite(run.exchange_rate) ? nlohmann::json(run.exchange_rate) : nlohmann::json(nullptr)},
                    {"circuit_shift", cs}, {"frozen_max_abs_diff", run.frozen_max_abs_diff},
                    {"trainable_tensors", run.trainable_tensors}, {"trainable_params", run.trainable_params},
                    {"fingerprint", run.fingerprint}, {"model_dir", "models/" + name + "-" + std::to_string(run.steps)},
                    {"train_seconds", run.train_seconds}, {"eval_seconds", run.eval_seconds}});
  }
  j["target"] = c.target;
  j["domains"] = d.domains;
  j["components"] = d.components;
  j["subsets"] = c.subsets;
  j["steps"] = c.steps;
  j["train"] = {{"batch_size", c.batch_size}, {"seq_len", c.seq_len}, {"lr", c.lr}, {"schedule", "linear warmup (steps/10), cosine to lr/10 at the last step count"}};
  j["eval_bytes"] = c.eval_bytes;
  j["base"] = {{"bits_per_byte", d.base.clean_bits_per_byte}, {"delta_bits_per_byte", d.base.delta_bits_per_byte}, {"eval_seconds", d.base_eval_seconds}};
  j["runs"] = runs;
  j["compared"] = d.compared;
  if (!d.units_before.empty())
    j["unit_classes"] = {{"compared", d.compared}, {"bytes_per_corpus", c.units_bytes}, {"rows", d.units_rows},
                         {"hooks", "blocks.*.mlp.hook_post"}, {"features", "automatic"}, {"before", d.units_before},
                         {"after", d.units_after}, {"null_before", d.units_null_before}, {"null_after", d.units_null_after},
                         {"seconds", d.units_seconds}};
  if (!d.winners_before.empty()) {
    nlohmann::json wb = nlohmann::json::object(), wa = nlohmann::json::object();
    for (const auto& [k, v] : d.winners_before) wb[k] = v;
    for (const auto& [k, v] : d.winners_after) wa[k] = v;
    j["competition_winner_shares"] = {{"compared", d.compared}, {"text", "the target's held-out head (" + std::to_string(c.mechanism_bytes) + " bytes)"},
                                      {"before", wb}, {"after", wa}};
  }
  if (d.switch_point.size() == 2)
    j["copy_vs_recall_switch_point"] = {{"compared", d.compared}, {"before", d.switch_point[0].to_json()}, {"after", d.switch_point[1].to_json()}};
  j["mechanism_seconds"] = d.mechanism_seconds;
  if (!d.mechanism_notes.empty()) j["mechanism_notes"] = d.mechanism_notes;
  if (d.has_crosscoder) {
    auto cj = d.crosscoder.to_json();
    cj["compared"] = d.compared;
    cj["train_bytes_per_corpus"] = c.crosscoder_train_bytes;
    cj["seconds"] = d.crosscoder_seconds;
    cj["model_a"] = "base";
    cj["model_b"] = d.compared;
    j["crosscoder"] = cj;
  }
  const double secs = seconds_since(t0);
  j["wall_seconds"] = secs;
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_file_atomic(out.file("tradeoff.csv"), trade.str());
  write_file_atomic(out.file("circuit_shift.csv"), shift.str());
  write_file_atomic(out.file("section.md"), section(r, d, c, in.name));
  Plot plot;
  std::ostringstream pts, sc;
  for (const auto& run : d.runs) pts << num(-run.delta_bits_per_byte[0], 6) << " " << num(run.other_delta_mean, 6) << " " << run.params << "/" << run.steps << "\n";
  for (const auto& run : d.runs)
    for (size_t ci = 0; ci < d.components.size(); ++ci)
      for (size_t k = 0; k < d.domains.size(); ++k)
        sc << num(run.delta_bits_per_byte[k], 6) << " " << num(run.shift.shift[ci][k], 6) << " " << (k == 0 ? 1 : 0) << "\n";
  const std::string f = plot.data("tradeoff.dat", pts.str()), g = plot.data("shift.dat", sc.str());
  if (!plot.render(out.file("tradeoff.png"),
                   "set title " + gp_quote("fine-tuning on " + c.target + ": bits gained on the target vs lost elsewhere") +
                       " noenhanced\nset grid\nset xlabel 'target: bits per byte gained'\nset ylabel 'other domains: bits per byte lost (mean)'\n"
                       "set key off\nplot " + f + " using 1:2 with points pt 7 ps 1.4, '' using 1:2:3 with labels offset 1,0.6 font ',8' noenhanced",
                   900, 600))
    std::fprintf(stderr, "warning: gnuplot failed; no tradeoff.png\n");
  if (!plot.render(out.file("shift_vs_delta.png"),
                   "set title " + gp_quote("circuit shift vs the domain's change (r = " + num(r.measurements[0].value, 3) + ")") +
                       " noenhanced\nset grid\nset xlabel 'domain: change in bits per byte (after - before)'\n"
                       "set ylabel 'component: change in Δbits per byte'\nplot " + g + " using 1:($3 == 0 ? $2 : 1/0) with points pt 6 title "
                       "'other domains', '' using 1:($3 == 1 ? $2 : 1/0) with points pt 7 lc rgb '#d62728' title 'target'",
                   900, 600))
    std::fprintf(stderr, "warning: gnuplot failed; no shift_vs_delta.png\n");
  out.commit();
  if (o.print) {
    std::printf("%s", section(r, d, c, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, tradeoff.csv, circuit_shift.csv, tradeoff.png, shift_vs_delta.png, models/), %.1f s\n",
                o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
