// `ccc experiment copy-vs-recall`: runs experiments::run_copy_vs_recall and renders its Result and detail.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/copy_recall.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

std::string section(const Result& r, const CopyRecallDetail& d, const std::string& input) {
  std::ostringstream md;
  md << "## copy-vs-recall: a planted copy against the model's own knowledge\n\n" << r.hypothesis << "\n\nModel `"
     << r.model << "`, input " << input << ", seed " << r.seed << "; " << d.positions.size()
     << " positions where the model recalls the next byte with p >= 0.9 from 24 bytes alone, a counterfactual byte "
        "planted k times in the context.\n\n"
     << measurement_table(r) << "\n**Verdict: " << to_string(r.verdict) << "** — " << r.verdict_rule << "\n\n";
  md << "Copy side removed: " << nlohmann::json(d.copy_components).dump() << "; recall side removed: "
     << nlohmann::json(d.recall_components).dump() << ".\n\n![win rate](win_rate.png)\n\n![dose](dose.png)\n\n";
  md << "| component | side | direct logit difference (nats) | win rate, it alone ablated (k = "
     << (d.repeats.size() > 1 ? "side k" : "") << ") |\n|---|---|---:|---:|\n";
  for (const auto& c : d.components)
    md << "| " << c.component << " | " << c.side << " | " << num(c.logit_diff, 3) << " | " << num(c.win_rate_ablated, 3) << " |\n";
  md << "\nThe rest of the mean logit difference " << num(d.logit_diff, 3) << ": embedding " << num(d.dla_embedding, 3)
     << ", attention-output biases " << num(d.dla_attn_bias, 3) << ", final-norm bias " << num(d.dla_norm_bias, 3) << ".\n";
  if (d.win_by_label.size() > 1) {
    md << "\n| label | positions |";
    for (int64_t k : d.repeats) md << " win rate k=" << k << " |";
    md << "\n|---|---:|";
    for (size_t j = 0; j < d.repeats.size(); ++j) md << "---:|";
    md << "\n";
    for (const auto& [lab, w] : d.win_by_label) {
      int64_t n = 0;
      for (const auto& p : d.positions) n += p.label == lab;
      md << "| " << (lab.empty() ? "-" : lab) << " | " << n << " |";
      for (double x : w) md << " " << num(x, 3) << " |";
      md << "\n";
    }
  }
  return md.str();
}

void write_files(OutputDir& out, const Result& r, const CopyRecallDetail& d, const std::string& input) {
  const size_t nk = d.repeats.size();
  std::ostringstream pos, comp, win, dose;
  pos << "offset,label,fact,counterfactual";
  for (int64_t k : d.repeats) pos << ",bits_fact_k" << k << ",bits_counterfactual_k" << k;
  pos << "\n";
  for (const auto& p : d.positions) {
    pos << p.offset << "," << csv_field(p.label) << "," << p.fact << "," << p.counterfactual;
    for (size_t j = 0; j < nk; ++j) pos << "," << num(p.bits_fact[j], 6) << "," << num(p.bits_cf[j], 6);
    pos << "\n";
  }
  comp << "component,side,logit_diff,win_rate_ablated\n";
  for (const auto& c : d.components)
    comp << c.component << "," << c.side << "," << num(c.logit_diff, 6) << "," << num(c.win_rate_ablated, 6) << "\n";
  win << "k clean copy_ablated recall_ablated null_mean null_low null_high\n";
  for (size_t j = 0; j < nk; ++j) {
    const std::string key = "win_rate_k" + std::to_string(d.repeats[j]) + "_copy_ablated";
    Measurement n;
    for (const auto& x : r.null)
      if (x.name == key) n = x;
    win << d.repeats[j] << " " << num(d.win_clean[j], 6) << " " << num(d.win_copy_ablated[j], 6) << " "
        << num(d.win_recall_ablated[j], 6) << " " << num(n.value, 6) << " " << num(n.ci_low, 6) << " " << num(n.ci_high, 6) << "\n";
  }
  dose << "alpha";
  for (int64_t k : d.repeats) dose << " copy_k" << k;
  for (int64_t k : d.repeats) dose << " recall_k" << k;
  dose << "\n";
  for (size_t a = 0; a < d.alphas.size(); ++a) {
    dose << num(d.alphas[a], 3);
    for (double x : d.dose_copy[a]) dose << " " << num(x, 6);
    for (double x : d.dose_recall[a]) dose << " " << num(x, 6);
    dose << "\n";
  }
  write_file_atomic(out.file("positions.csv"), pos.str());
  write_file_atomic(out.file("components.csv"), comp.str());
  write_file_atomic(out.file("win_rates.csv"), win.str());
  write_file_atomic(out.file("dose.csv"), dose.str());
  write_file_atomic(out.file("section.md"), section(r, d, input));
  const std::string title = fs::path(r.model).filename().string() + " on " + input;
  Plot plot;
  const std::string wdat = plot.data("win.dat", win.str()), ddat = plot.data("dose.dat", dose.str());
  bool ok = plot.render(out.file("win_rate.png"),
                        "set key outside right top\nset xlabel 'k: planted copies of the counterfactual'\n"
                        "set ylabel 'counterfactual win rate'\nset yrange [0:1]\nset grid\nset title " +
                            gp_quote("copy-vs-recall: " + title) + " noenhanced\nplot " + wdat +
                            " using 1:6:7 with filledcurves fs transparent solid 0.2 lc rgb 'gray' title 'null: random sets (95%)', '' "
                            "using 1:2 with linespoints lw 2 title 'clean', '' using 1:3 with linespoints title 'copy side ablated', "
                            "'' using 1:4 with linespoints title 'recall side ablated', 0.5 with lines dt 2 lc rgb 'black' notitle",
                        900, 500);
  std::ostringstream dp;  // two panels: the copy side's outputs scaled, the recall side's
  dp << "set multiplot layout 1,2 title " << gp_quote("copy-vs-recall dose-response: " + title) << " noenhanced\n"
     << "set key bottom right\nset xlabel 'alpha: scale of the side''s outputs'\nset ylabel 'counterfactual win rate'\n"
        "set yrange [0:1]\nset grid\n";
  for (int side = 0; side < 2; ++side) {
    dp << "set title '" << (side == 0 ? "copy side scaled" : "recall side scaled") << "'\nplot ";
    for (size_t j = 0; j < nk; ++j)
      dp << (j ? ", " : "") << ddat << " using 1:" << 2 + side * nk + j << " with linespoints lc " << j + 1 << " title 'k="
         << d.repeats[j] << "'";
    dp << "\n";
  }
  dp << "unset multiplot";
  ok = plot.render(out.file("dose.png"), dp.str(), 1200, 500) && ok;
  if (!ok) std::fprintf(stderr, "warning: gnuplot failed; plots missing\n");
}

}  // namespace

void run_copy_recall_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m) {
  const auto in = experiment_input(o, o.quick ? 3000 : 12000);
  CopyRecallOptions c;
  c.mode = circuits::parse_mode(o.mode);
  c.seed = o.seed;
  c.byte_labels = in.labels;
  if (o.quick) c.positions = 16, c.repeats = {0, 1, 2, 4}, c.null_draws = 20, c.alphas = {0, 0.5, 1, 2}, c.resamples = 500;
  if (o.positions > 0) c.positions = o.positions;
  if (o.null_draws > 0) c.null_draws = o.null_draws;
  if (!o.repeats.empty()) c.repeats = o.repeats;
  if (o.top > 0) c.top = o.top;
  if (o.span > 0) c.span = o.span;
  if (o.filler >= 0) c.filler = o.filler;
  if (o.min_p > 0) c.min_p = o.min_p;
  c.progress = phase_progress("copy-vs-recall", o.progress);
  if (o.progress)
    std::fprintf(stderr, "copy-vs-recall: %lld positions of %s, k in %s, %lld null draws\n", static_cast<long long>(c.positions),
                 in.name.c_str(), nlohmann::json(c.repeats).dump().c_str(), static_cast<long long>(c.null_draws));
  const auto t0 = std::chrono::steady_clock::now();
  CopyRecallDetail d;
  Result r = run_copy_vs_recall(m, in.text, c, &d);
  nlohmann::json j = result_json(r, m, in, o);
  j["positions"] = d.positions.size();
  j["repeats"] = d.repeats;
  j["side_k"] = c.side_k;
  j["span"] = c.span;
  j["filler"] = c.filler;
  j["min_p"] = c.min_p;
  j["positions_scanned"] = d.candidates_scanned;
  nlohmann::json comps = nlohmann::json::array();
  const std::string key = "win_rate_ablated_k" + std::to_string(c.side_k);
  for (const auto& x : d.components)
    comps.push_back({{"component", x.component}, {"side", x.side}, {"logit_diff", x.logit_diff}, {key, x.win_rate_ablated}});
  j["components"] = comps;
  j["copy_components"] = d.copy_components;
  j["recall_components"] = d.recall_components;
  j["logit_diff_rest"] = {{"logit_diff", d.logit_diff}, {"embedding", d.dla_embedding},
                          {"attn_output_biases", d.dla_attn_bias}, {"final_norm_bias", d.dla_norm_bias}};
  j["dose_response"] = {{"alphas", d.alphas}, {"copy_side", d.dose_copy}, {"recall_side", d.dose_recall}};
  nlohmann::json by = nlohmann::json::object();
  for (const auto& [lab, w] : d.win_by_label) by[lab.empty() ? "-" : lab] = w;
  j["win_rate_by_label"] = by;
  const double secs = seconds_since(t0);
  OutputDir out(o.out, o.force);
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_files(out, r, d, in.name);
  out.commit();
  if (o.print) {
    std::printf("%s", section(r, d, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, positions.csv, components.csv, win_rates.csv, dose.csv, win_rate.png, "
                "dose.png), %.1f s\n", o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
