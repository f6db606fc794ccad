// `ccc experiment scaling`: the classic compressors measured on each domain, experiments::run_scaling on the
// family, and the rendering of both.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/scaling.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

std::string section(const Result& r, const ScalingDetail& d, const std::map<std::string, std::map<std::string, double>>& classic,
                    const std::string& input) {
  std::ostringstream md;
  md << "## scaling: bits per byte against parameters\n\n" << r.hypothesis << "\n\nModels " << r.model << "; input " << input
     << ", seed " << r.seed << ".\n\n" << measurement_table(r) << "\n**Verdict: " << to_string(r.verdict) << "** — "
     << r.verdict_rule << "\n\n![scaling](scaling.png)\n\n| bits per byte | non-embedding params |";
  for (const auto& dom : d.domains) md << " " << dom << " |";
  md << " mean |\n|---|---:|";
  for (size_t i = 0; i <= d.domains.size(); ++i) md << "---:|";
  md << "\n";
  for (size_t i = 0; i < d.models.size(); ++i) {
    md << "| " << d.models[i] << " | " << d.params[i] << " |";
    for (double x : d.bits_per_byte[i]) md << " " << num(x, 3) << " |";
    md << " " << num(d.mean_bits_per_byte[i], 3) << " |\n";
  }
  for (const auto& [label, per] : classic) {
    md << "| " << label << " | - |";
    double mean = 0;
    for (const auto& dom : d.domains) {
      const double x = per.count(dom) ? per.at(dom) : std::nan("");
      md << " " << (std::isnan(x) ? std::string("-") : num(x, 3)) << " |";
      mean += x / static_cast<double>(d.domains.size());
    }
    md << " " << (std::isnan(mean) ? std::string("-") : num(mean, 3)) << " |\n";
  }
  md << "| fitted exponent alpha | |";
  for (double a : d.exponent) md << " " << num(a, 3) << " |";
  md << " " << num(d.exponent_all, 3) << " |\n";
  return md.str();
}

}  // namespace

void run_scaling_cmd(const ExperimentCmdOptions& o) {
  auto paths = o.models.empty() ? shipped_family() : o.models;
  CCC_CHECK(paths.size() >= 3, "scaling: needs at least 3 models (--models a,b,c; the shipped family has ", paths.size(), " here)");
  std::vector<model::LoadedModel> loaded;
  for (const auto& p : paths) loaded.push_back(model::load_model(p));
  std::vector<model::LoadedModel*> ms;
  for (auto& m : loaded) ms.push_back(&m);
  const auto in = experiment_input(o, o.quick ? 1500 : 12000);
  // the domains: the input's domain labels (a FILE is one domain)
  std::vector<std::pair<std::string, std::string>> domains;
  if (in.labels.empty()) domains.emplace_back("input", in.text);
  for (const auto& [label, on] : in.labels) {
    std::string t;
    for (size_t i = 0; i < in.text.size(); ++i)
      if (on[i]) t += in.text[i];
    domains.emplace_back(label.rfind("domain:", 0) == 0 ? label.substr(7) : label, t);
  }
  if (o.progress) std::fprintf(stderr, "scaling: %zu models on %zu domains of %s, then the classic compressors\n", ms.size(),
                               domains.size(), in.name.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  ScalingOptions c;
  c.seed = o.seed;
  c.streams = o.streams;
  if (o.quick) c.resamples = 200, c.null_draws = 50;
  if (o.null_draws > 0) c.null_draws = o.null_draws;
  c.progress = phase_progress("scaling", o.progress);
  ScalingDetail d;
  Result r = run_scaling(ms, domains, c, &d);
  // classic compressors on the same domain texts
  std::map<std::string, std::map<std::string, double>> classic;
  const std::string tmp = (fs::temp_directory_path() / ("ccc_scaling_" + std::to_string(::getpid()))).string();
  for (const auto& [label, cmd] : classic_compressors())
    for (const auto& [dom, text] : domains) {
      const int64_t size = classic_compressed_size(label, text, tmp);
      if (size >= 0) classic[label][dom] = 8.0 * static_cast<double>(size) / static_cast<double>(text.size());
    }
  std::error_code ec;
  fs::remove(tmp, ec);
  const std::string family = r.model;
  nlohmann::json j = result_json(r, loaded.back(), in, o);
  j["model"] = family;
  j["fingerprint"] = nullptr;
  nlohmann::json fps = nlohmann::json::object(), rows = nlohmann::json::array();
  for (size_t i = 0; i < d.models.size(); ++i) {
    fps[d.models[i]] = loaded[i].fingerprint;
    rows.push_back({{"model", d.models[i]}, {"non_embedding_params", d.params[i]}, {"params", d.params_total[i]},
                    {"bits_per_byte", d.bits_per_byte[i]}, {"mean_bits_per_byte", d.mean_bits_per_byte[i]}});
  }
  j["fingerprints"] = fps;
  j["domains"] = d.domains;
  j["family"] = rows;
  j["fit"] = {{"exponent", d.exponent}, {"log2_intercept", d.intercept}, {"exponent_mean", d.exponent_all},
              {"log2_intercept_mean", d.intercept_all}};
  j["classic_bits_per_byte"] = classic;
  const double secs = seconds_since(t0);
  std::ostringstream csv, ccsv;
  csv << "model,non_embedding_params,domain,bits_per_byte\n";
  for (size_t i = 0; i < d.models.size(); ++i)
    for (size_t k = 0; k < d.domains.size(); ++k)
      csv << d.models[i] << "," << d.params[i] << "," << d.domains[k] << "," << num(d.bits_per_byte[i][k], 6) << "\n";
  ccsv << "compressor,domain,bits_per_byte\n";
  for (const auto& [label, per] : classic)
    for (const auto& [dom, x] : per) ccsv << label << "," << dom << "," << num(x, 6) << "\n";
  OutputDir out(o.out, o.force);
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_file_atomic(out.file("scaling.csv"), csv.str());
  write_file_atomic(out.file("classic.csv"), ccsv.str());
  write_file_atomic(out.file("section.md"), section(r, d, classic, in.name));
  // one panel per domain and one for the mean: the models, the fit, the classic compressors as lines
  Plot plot;
  const size_t panels = d.domains.size() + 1, cols = std::min<size_t>(4, panels), rws = (panels + cols - 1) / cols;
  std::ostringstream gp;
  gp << "set multiplot layout " << rws << "," << cols << " title " << gp_quote("scaling: " + family + " on " + in.name)
     << " noenhanced\nset logscale x\nset grid\nset xrange [5e4:1e7]\nset format x '10^{%L}'\nset xlabel 'non-embedding parameters'\n"
        "set ylabel 'bits per byte'\n";
  for (size_t k = 0; k < panels; ++k) {
    const bool mean = k == d.domains.size();
    std::ostringstream pts;
    for (size_t i = 0; i < d.models.size(); ++i)
      pts << d.params[i] << " " << num(mean ? d.mean_bits_per_byte[i] : d.bits_per_byte[i][k], 6) << "\n";
    const std::string dat = plot.data("p" + std::to_string(k) + ".dat", pts.str());
    const double a = mean ? d.exponent_all : d.exponent[k], b = mean ? d.intercept_all : d.intercept[k];
    gp << (mean ? "set key top right font ',7' box opaque\n" : "set key off\n");
    gp << "set title '" << (mean ? std::string("mean over domains (legend)") : d.domains[k]) << "'\nplot " << dat
       << " using 1:2 with points pt 7 ps 1.2 title 'ccc family', 2**(" << b << ") * x**(-" << a << ") with lines dt 2 title "
       << gp_quote("fit alpha=" + num(a, 3));
    int lt = 3;
    for (const auto& [label, per] : classic) {
      double v = 0;
      if (mean) {
        for (const auto& dom : d.domains) v += (per.count(dom) ? per.at(dom) : std::nan("")) / static_cast<double>(d.domains.size());
      } else {
        v = per.count(d.domains[k]) ? per.at(d.domains[k]) : std::nan("");
      }
      if (!std::isnan(v)) gp << ", " << v << " with lines lt " << lt++ << " title " << gp_quote(label);
    }
    gp << "\n";
  }
  gp << "unset multiplot";
  if (!plot.render(out.file("scaling.png"), gp.str(), 400 * static_cast<int>(cols), 330 * static_cast<int>(rws)))
    std::fprintf(stderr, "warning: gnuplot failed; no scaling.png\n");
  out.commit();
  if (o.print) {
    std::printf("%s", section(r, d, classic, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, scaling.csv, classic.csv, scaling.png), %.1f s\n", o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
