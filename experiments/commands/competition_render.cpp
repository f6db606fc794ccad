// `ccc experiment competition`: runs experiments::run_competition and renders its Result and detail.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/competition.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

// section.md: the hypothesis, the measurements beside their nulls, the verdict and its rule, the winners.
std::string competition_section(const Result& r, const CompetitionDetail& d, const std::string& input) {
  std::ostringstream md;
  md << "## competition: who wins on natural text\n\n" << r.hypothesis << "\n\nModel `" << r.model << "`, input "
     << input << ", seed " << r.seed << ".\n\n" << measurement_table(r);
  md << "\n**Verdict: " << to_string(r.verdict) << "** — " << r.verdict_rule << "\n\n| component | share of wins | mean Δ bits | wins enriched in (lift) |\n|---|---:|---:|---|\n";
  for (size_t i = 0; i < std::min<size_t>(12, d.winners.size()); ++i) {
    const auto& w = d.winners[i];
    md << "| " << w.component << " | " << num(w.share_of_tokens, 3) << " | " << num(w.mean_delta_bits, 4) << " | "
       << (w.top_feature.empty() ? "-" : w.top_feature + " (" + num(w.lift, 2) + ")") << " |\n";
  }
  if (!d.pairs.empty()) {
    md << "\n| pair | kind | interaction bits (95% CI) |\n|---|---|---|\n";
    for (const auto& p : d.pairs)
      md << "| " << p.a << " + " << p.b << " | " << (p.random ? "random" : "top") << " | " << num(p.interaction_bits, 1)
         << " [" << num(p.ci_low, 1) << ", " << num(p.ci_high, 1) << "] |\n";
  }
  md << "\n![dominance](dominance.png)\n";
  if (d.naive_sample > 0) {
    const double naive = d.naive_seconds_per_component * static_cast<double>(d.candidates.size());
    md << "\nSpeed: the batched sweep scored all " << d.candidates.size() << " ablations in " << num(d.sweep_seconds, 1)
       << " s; one run per component takes " << num(d.naive_seconds_per_component, 2) << " s (" << d.naive_sample
       << " timed in this run), " << num(naive, 1) << " s for all: " << num(d.speedup, 2)
       << "x faster batched; largest per-token difference between the two " << d.naive_max_abs_diff << " bits.\n";
  }
  return md.str();
}

void write_competition(OutputDir& out, const Result& r, const CompetitionDetail& d, const std::string& input) {
  std::ostringstream tok, win, pairs;
  tok << "token,byte_offset,class,winner,dominance,null_dominance\n";
  for (size_t t = 0; t < d.winner.size(); ++t)
    tok << t << "," << d.byte_offset[t] << "," << d.token_class[t] << ","
        << (d.winner[t] >= 0 ? d.candidates[static_cast<size_t>(d.winner[t])] : "") << ","
        << (std::isnan(d.dominance[t]) ? "" : num(d.dominance[t], 6)) << ","
        << (std::isnan(d.null_dominance[t]) ? "" : num(d.null_dominance[t], 6)) << "\n";
  win << "component,share_of_tokens,mean_delta_bits,top_feature,lift\n";
  for (const auto& w : d.winners)
    win << w.component << "," << num(w.share_of_tokens, 6) << "," << num(w.mean_delta_bits, 6) << "," << w.top_feature
        << "," << num(w.lift, 4) << "\n";
  pairs << "a,b,kind,interaction_bits,ci_low,ci_high\n";
  for (const auto& p : d.pairs)
    pairs << p.a << "," << p.b << "," << (p.random ? "random" : "top") << "," << num(p.interaction_bits, 4) << ","
          << num(p.ci_low, 4) << "," << num(p.ci_high, 4) << "\n";
  write_file_atomic(out.file("tokens.csv"), tok.str());
  write_file_atomic(out.file("winners.csv"), win.str());
  write_file_atomic(out.file("pairs.csv"), pairs.str());
  write_file_atomic(out.file("section.md"), competition_section(r, d, input));
  // dominance histogram, tokens vs the column-permutation null
  std::vector<int64_t> real(20, 0), null(20, 0);
  for (size_t t = 0; t < d.dominance.size(); ++t) {
    if (!std::isnan(d.dominance[t])) real[std::min<size_t>(19, static_cast<size_t>(d.dominance[t] * 20))]++;
    if (!std::isnan(d.null_dominance[t])) null[std::min<size_t>(19, static_cast<size_t>(d.null_dominance[t] * 20))]++;
  }
  std::ostringstream h;
  h << "dominance tokens null\n";
  for (int b = 0; b < 20; ++b) h << num(0.025 + 0.05 * b, 3) << " " << real[b] << " " << null[b] << "\n";
  Plot plot;
  const std::string dat = plot.data("dominance.dat", h.str());
  if (!plot.render(out.file("dominance.png"),
                   "set key autotitle columnhead outside right top\nset style fill solid 0.5 border -1\nset boxwidth 0.045\n"
                   "set xlabel 'dominance: costliest ablation / sum of positive ablation costs'\nset ylabel 'tokens'\n"
                   "set xrange [0:1]\nset title " + gp_quote("competition: " + fs::path(r.model).filename().string() + " on " + input) +
                       " noenhanced\nplot " + dat + " using 1:2 with boxes, '' using 1:3 with boxes",
                   900, 500))
    std::fprintf(stderr, "warning: gnuplot failed; no dominance.png\n");
}

}  // namespace

void run_competition_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m) {
  const auto in = experiment_input(o, o.quick ? 400 : 9000);
  CompetitionOptions c;
  c.mode = circuits::parse_mode(o.mode);
  c.streams = o.streams;
  c.seed = o.seed;
  c.byte_labels = in.labels;
  if (!o.circuit.empty()) c.extra = circuits::parse_components(o.circuit, m.config);
  if (o.quick) c.null_draws = 10, c.pair_top = 3, c.resamples = 500;
  c.progress = phase_progress("competition", o.progress);
  CompetitionDetail detail;
  const auto t0 = std::chrono::steady_clock::now();
  if (o.progress)
    std::fprintf(stderr, "competition: %zu bytes of %s, every head and MLP ablated alone, then pairs\n", in.text.size(),
                 in.name.c_str());
  Result r = run_competition(m, in.text, c, &detail);
  nlohmann::json j = result_json(r, m, in, o);
  j["n_tokens"] = detail.winner.size();
  j["candidates"] = detail.candidates;
  nlohmann::json winners = nlohmann::json::array();
  for (const auto& w : detail.winners)
    winners.push_back({{"component", w.component}, {"share_of_tokens", w.share_of_tokens}, {"top_feature", w.top_feature}});
  j["winners"] = winners;
  j["timing"] = {{"sweep_seconds", detail.sweep_seconds}, {"naive_seconds_per_component", detail.naive_seconds_per_component},
                 {"naive_components_timed", detail.naive_sample},
                 {"speedup_over_one_run_per_component", detail.speedup},
                 {"naive_max_abs_diff_bits", detail.naive_max_abs_diff}};
  const double secs = seconds_since(t0);
  OutputDir out(o.out, o.force);  // result.json, the CSVs, section.md and the plot appear together
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_competition(out, r, detail, in.name);
  out.commit();
  if (o.print) {
    std::printf("%s", competition_section(r, detail, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, tokens.csv, winners.csv, pairs.csv, dominance.png), %.1f s\n",
                o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
