// `ccc experiment emergence`: the series (checkpoints of training runs, the shipped family's sizes),
// experiments::run_emergence, and the rendering of its Result and detail.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/emergence.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

nlohmann::json maybe(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

nlohmann::json fit_json(const ChangePoint& c) {
  if (c.index < 0) return nullptr;
  return {{"found", c.found},        {"change_step", c.x},     {"step_before", c.x_before}, {"jump", c.jump},
          {"range", c.range},        {"bic_gain", c.bic_gain}, {"null_bic_gain_97_5", c.null_gain_high},
          {"smooth_fit", c.smooth}};
}

std::string fit_words(const ChangePoint& c, const std::string& unit) {
  if (c.index < 0) return "not fitted (fewer than " + std::to_string(kMinChangePoints) + " points)";
  std::ostringstream s;
  s << (c.found ? "**change** between " : "no change point (best jump between ") << num(c.x_before, 0) << " and " << num(c.x, 0)
    << " " << unit << (c.found ? "" : ")") << ", jump " << num(c.jump, 3) << " of range " << num(c.range, 3) << ", BIC gain "
    << num(c.bic_gain, 1) << " vs null 97.5% " << num(c.null_gain_high, 1);
  return s.str();
}

std::string section(const Result& r, const std::vector<EmergenceSeries>& d, const std::string& input) {
  std::ostringstream md;
  md << "## emergence: does an ability appear when its circuit starts winning?\n\n" << r.hypothesis << "\n\nSeries " << r.model
     << "; " << input << ", seed " << r.seed << ".\n\n" << measurement_table(r) << "\n**Verdict: " << to_string(r.verdict) << "** — "
     << r.verdict_rule << "\n\n![ability and circuit against step](emergence.png)\n\n";
  for (const auto& s : d) {
    const std::string unit = s.kind == "checkpoints" ? "steps" : "parameters";
    md << "### " << s.name << " (" << s.points.size() << " " << (s.kind == "checkpoints" ? "checkpoints" : "sizes") << ")\n\n";
    if (s.kind == "checkpoints") {
      md << "Induction circuit (the detectors' induction heads, then the previous-token heads below them, at the last checkpoint): ";
      for (size_t i = 0; i < s.components.size(); ++i) md << (i ? ", " : "") << s.components[i];
      md << ".\n\n";
    }
    md << "- ability (bits per byte of the second copy): " << fit_words(s.ability, unit) << "\n- circuit (induction score): "
       << fit_words(s.circuit, unit) << "\n\n| " << (s.kind == "checkpoints" ? "step" : "non-embedding params")
       << " | induction score | winner share | bits repeated | bits fresh | circuit Δbits | ICL score |"
       << (s.kind == "sizes" ? " components |" : "") << "\n|---:|---:|---:|---:|---:|---:|---:|" << (s.kind == "sizes" ? "---|" : "") << "\n";
    for (size_t i = 0; i < s.points.size(); ++i) {
      const auto& p = s.points[i];
      md << "| " << num(p.x, 0) << " | " << num(p.induction_score, 3) << " | " << num(p.winner_share, 3) << " | " << num(p.bits_repeated, 3)
         << " | " << num(p.bits_fresh, 3) << " | " << num(p.circuit_delta_bits, 3) << " | "
         << (std::isfinite(p.icl_score) ? num(p.icl_score, 3) : std::string("-")) << " |";
      if (s.kind == "sizes") md << " " << s.components[i] << " |";
      md << "\n";
    }
    md << "\n";
  }
  return md.str();
}

}  // namespace

void run_emergence_cmd(const ExperimentCmdOptions& o) {
  std::vector<EmergenceSeriesInput> inputs;
  const auto runs = o.runs.empty() ? std::vector<std::string>{std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2"} : o.runs;
  for (const auto& run : runs) inputs.push_back(checkpoint_series(run));
  const auto family = o.models.empty() ? shipped_family() : o.models;
  if (!(o.models.size() == 1 && o.models[0] == "none") && family.size() >= 2) inputs.push_back(size_series("family", family));
  EmergenceOptions c;
  c.seed = o.seed;
  if (o.quick) c.probes = 8, c.resamples = 200, c.null_draws = 50, c.icl_windows = 16;
  if (o.positions > 0) c.probes = o.positions;
  if (o.span > 0) c.len = o.span;
  if (o.null_draws > 0) c.null_draws = o.null_draws;
  std::string icl_text;
  try {
    c.icl_sources = held_out_sources(o.corpora_dir);
    for (auto& [name, text] : c.icl_sources) {
      icl_text += text;
    }
  } catch (const Error&) {
    if (!o.corpora_dir.empty()) throw;  // a named directory must hold corpora; the default may be absent (ICL score left out)
  }
  c.progress = phase_progress("emergence", o.progress);
  int64_t points = 0;
  for (const auto& s : inputs) points += static_cast<int64_t>(s.points.size());
  if (o.progress)
    std::fprintf(stderr, "emergence: %zu series, %lld models, %lld probes of %lld bytes\n", inputs.size(), (long long)points,
                 (long long)c.probes, (long long)c.len);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<EmergenceSeries> d;
  Result r = run_emergence(inputs, c, &d);
  ExperimentInput in;
  in.name = std::to_string(c.probes) + " probe sequences [BOS, r, r] of " + std::to_string(c.len) + " random printable bytes (seed " +
            std::to_string(c.seed) + ")" + (c.icl_sources.empty() ? std::string() : "; ICL score on the held-out splits");
  in.text = icl_text;
  auto last = model::load_model(d.front().points.back().model);
  const std::string names = r.model;
  nlohmann::json j = result_json(r, last, in, o);
  r.model = names;  // the series, not the one model result_json names
  j["model"] = names;
  nlohmann::json rows = nlohmann::json::array(), fits = nlohmann::json::array();
  std::ostringstream csv;
  csv << "run,kind,step,induction_score,winner_share,bits_repeated,bits_fresh,circuit_delta_bits,icl_score,max_prev_token,max_induction,model\n";
  for (const auto& s : d) {
    for (const auto& p : s.points) {
      rows.push_back({{"run", s.name}, {"kind", s.kind}, {"step", p.x}, {"induction_score", p.induction_score},
                      {"winner_share", p.winner_share}, {"icl_score", maybe(p.icl_score)}, {"bits_repeated", p.bits_repeated},
                      {"bits_fresh", p.bits_fresh}, {"circuit_delta_bits", p.circuit_delta_bits}, {"max_prev_token", p.max_prev_token},
                      {"max_induction", p.max_induction}, {"model", p.model}, {"fingerprint", p.fingerprint}});
      csv << s.name << "," << s.kind << "," << num(p.x, 0) << "," << num(p.induction_score, 6) << "," << num(p.winner_share, 6) << ","
          << num(p.bits_repeated, 6) << "," << num(p.bits_fresh, 6) << "," << num(p.circuit_delta_bits, 6) << ","
          << (std::isfinite(p.icl_score) ? num(p.icl_score, 6) : std::string()) << "," << num(p.max_prev_token, 6) << ","
          << num(p.max_induction, 6) << "," << p.model << "\n";
    }
    fits.push_back({{"run", s.name}, {"kind", s.kind}, {"components", s.components}, {"spacing", s.spacing},
                    {"ability", fit_json(s.ability)}, {"circuit", fit_json(s.circuit)}});
  }
  j["series"] = rows;
  j["fits"] = fits;
  j["probes"] = c.probes;
  j["probe_len"] = c.len;
  const double secs = seconds_since(t0);
  OutputDir out(o.out, o.force);
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_file_atomic(out.file("emergence.csv"), csv.str());
  write_file_atomic(out.file("section.md"), section(r, d, in.name));
  // one row per series: ability (bits) on the left axis, circuit (scores) on the right, the change points as lines
  Plot plot;
  std::ostringstream gp;
  gp << "set multiplot layout " << d.size() << ",1 title " << gp_quote("emergence: ability and circuit (" + names + ")")
     << " noenhanced\nset grid\nset key outside right top font ',8'\nset ylabel 'bits per byte'\nset y2label 'score / share'\n"
        "set y2range [0:1]\nset ytics nomirror\nset y2tics\n";
  for (size_t k = 0; k < d.size(); ++k) {
    const auto& s = d[k];
    std::ostringstream dat;
    for (const auto& p : s.points)
      dat << num(p.x, 0) << " " << num(p.bits_repeated, 6) << " " << num(p.bits_fresh, 6) << " " << num(p.induction_score, 6) << " "
          << num(p.winner_share, 6) << "\n";
    const std::string f = plot.data("s" + std::to_string(k) + ".dat", dat.str());
    gp << "unset arrow\n" << (s.kind == "sizes" ? "set logscale x\nset xlabel 'non-embedding parameters'\n" : "unset logscale x\nset xlabel 'training step'\n");
    if (s.ability.found) gp << "set arrow from " << s.ability.x << ", graph 0 to " << s.ability.x << ", graph 1 nohead lw 2 lc rgb '#1f77b4' dt 2\n";
    if (s.circuit.found) gp << "set arrow from " << s.circuit.x << ", graph 0 to " << s.circuit.x << ", graph 1 nohead lw 2 lc rgb '#d62728' dt 3\n";
    gp << "set title " << gp_quote(s.name + " (vertical lines: change points found, ability blue, circuit red)") << " noenhanced\nplot " << f
       << " using 1:2 axes x1y1 with linespoints pt 7 lc rgb '#1f77b4' title 'bits, 2nd copy', '' using 1:3 axes x1y1 with lines lc rgb "
          "'#7f7f7f' title 'bits, 1st copy', '' using 1:4 axes x1y2 with linespoints pt 5 lc rgb '#d62728' title 'induction score', "
          "'' using 1:5 axes x1y2 with linespoints pt 4 lc rgb '#2ca02c' title 'winner share'\n";
  }
  gp << "unset multiplot";
  if (!plot.render(out.file("emergence.png"), gp.str(), 1000, 330 * static_cast<int>(d.size())))
    std::fprintf(stderr, "warning: gnuplot failed; no emergence.png\n");
  out.commit();
  if (o.print) {
    std::printf("%s", section(r, d, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, emergence.csv, emergence.png), %.1f s\n", o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
