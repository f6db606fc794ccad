#include "experiments/commands/units_cmd.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "analysis/sae.h"
#include "analysis/sae_eval.h"
#include "circuits/sweep.h"
#include "model/scoring/streams.h"
#include "experiments/commands/ablate_cmd.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (0 when it is not one: a stray continuation byte,
// an invalid lead, a sequence cut by the end of `s` — a context window's edge —, overlong or surrogate).
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (c >= 0xF5 || n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) > 0x9F) || (c == 0xF0 && b(i + 1) < 0x90) ||
      (c == 0xF4 && b(i + 1) > 0x8F))
    return 0;
  return n;
}

// "≈ printable" rendering of input bytes for report contexts (always valid UTF-8: control bytes and bytes
// that are not part of a whole UTF-8 character within the window are written \xNN)
std::string render(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (const size_t n = utf8_len(s, i)) {
        out.append(s.substr(i, n));
        i += n;
        continue;
      }
    }
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 32 || c >= 127) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  return out;
}

std::string fmt(double x, int prec = 4) {
  if (std::isnan(x)) return "nan";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, x);
  return b;
}

}  // namespace

namespace {

using Ablated = std::map<const analysis::UnitResult*, circuits::DeltaStats>;
const std::vector<std::string> kClasses = {"dead", "monosemantic", "polysemantic", "unexplained"};

std::string feature_name(const analysis::UnitsReport& rep, int f) { return f >= 0 ? rep.features[f] : std::string(""); }
double auroc_of(const analysis::UnitResult& u, int f) { return f >= 0 ? static_cast<double>(u.auroc[f]) : NAN; }

// The dumped text, checked against the dump's sha256; *source receives its path.
std::string checked_source_text(const UnitsCmdOptions& o, const analysis::ActivationStore& store, std::string* source) {
  *source = o.source.empty() ? store.attr("source") : o.source;
  CCC_CHECK(!source->empty() && *source != "-", o.dump, ": the dump does not name a source file; pass --source FILE");
  std::string text;
  try {
    text = read_file(*source, kTextCap);
  } catch (const std::exception& e) {
    CCC_FAIL(o.dump, ": its source text ", *source, " cannot be read (", e.what(), "); pass --source FILE");
  }
  const std::string want = store.attr("source_sha256");
  CCC_CHECK(want.empty() || sha256_hex(text) == want, *source, ": not the text this dump was made from (sha256 ",
            sha256_hex(text), ", the dump says ", want, ")");
  return text;
}

// The automatic features of the text, then --feature regexes and --labels files; names must be unique.
std::vector<analysis::Feature> unit_features(const UnitsCmdOptions& o, const analysis::ActivationStore& store,
                                             const std::string& text) {
  const auto offsets = store.byte_offsets();
  auto features = analysis::dump_auto_features(store, text);
  for (const auto& spec : o.features) {
    const size_t eq = spec.find('=');
    CCC_CHECK(eq != std::string::npos && eq > 0, "--feature ", spec, ": expected NAME=REGEX");
    features.push_back(analysis::regex_feature(spec.substr(0, eq), spec.substr(eq + 1), text, offsets));
  }
  for (const auto& csv : o.labels)
    for (auto& f : read_labels_csv(csv, offsets)) features.push_back(std::move(f));
  std::map<std::string, int> seen;
  for (const auto& f : features) {
    CCC_CHECK(valid_utf8(f.name), "feature name '", escape_bytes(f.name),
              "' is not valid UTF-8 (the report and summary.json hold it as text)");
    CCC_CHECK(++seen[f.name] == 1, "feature ", f.name, " is defined twice");
  }
  return features;
}

// --ablate-top K: mean-ablate the K most selective neurons / heads on the dumped text, under the dump's policy.
// With --sae, the dictionary's features are candidates too: removing one subtracts its decoder contribution.
Ablated ablate_top_units(const UnitsCmdOptions& o, const analysis::ActivationStore& store, const std::string& text,
                         const analysis::UnitsReport& rep, const analysis::Sae* sae, const std::string& sae_hook) {
  auto ends = [](const std::string& s, const std::string& tail) {
    return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  std::vector<const analysis::UnitResult*> cand;
  for (const auto& u : rep.units) {
    const bool ok = ends(u.hook, ".mlp.hook_post") || ends(u.hook, ".attn.hook_z") || (sae && ends(u.hook, ":sae"));
    if (ok && u.layer >= 0 && u.cls != "dead" && u.top_feature >= 0) cand.push_back(&u);
  }
  // the K most selective of each kind: neurons and heads, and (with --sae) features
  std::stable_partition(cand.begin(), cand.end(), [&](auto* u) { return !ends(u->hook, ":sae"); });
  const auto mid = std::find_if(cand.begin(), cand.end(), [&](auto* u) { return ends(u->hook, ":sae"); });
  const auto by_auroc = [](auto* a, auto* b) { return a->auroc[a->top_feature] > b->auroc[b->top_feature]; };
  std::vector<const analysis::UnitResult*> units(cand.begin(), mid), feats_c(mid, cand.end());
  std::sort(units.begin(), units.end(), by_auroc);
  std::sort(feats_c.begin(), feats_c.end(), by_auroc);
  if (static_cast<int64_t>(units.size()) > o.ablate_top) units.resize(static_cast<size_t>(o.ablate_top));
  if (static_cast<int64_t>(feats_c.size()) > o.ablate_top) feats_c.resize(static_cast<size_t>(o.ablate_top));
  cand = units;
  cand.insert(cand.end(), feats_c.begin(), feats_c.end());
  CCC_CHECK(!cand.empty(), "--ablate-top: no neuron (mlp.hook_post) or head (attn.hook_z) units in the analysis");
  const std::string model_path = o.model.empty() ? default_model_path() : o.model;
  circuits::ScoringRun run;
  run.mode = circuits::Mode::kMean;
  run.streams = store.attr_int("streams");
  run.window = store.attr_int("window");
  auto m = model::load_model(model_path, o.tokenizer);
  CCC_CHECK(m.fingerprint == store.attr("fingerprint"), model_path, ": not the model of ", o.dump, " (fingerprint ",
            m.fingerprint.substr(0, 16), ", the dump's ", store.attr("fingerprint").substr(0, 16), "); pass -m");
  std::vector<circuits::Component> set;
  std::vector<int64_t> feats;
  std::vector<const analysis::UnitResult*> order;  // components first, then features: the order of bits_of
  for (auto* u : cand) {
    if (ends(u->hook, ":sae")) continue;
    const bool head = u->hook.find("attn.hook_z") != std::string::npos;
    set.push_back({head ? circuits::Component::Kind::kHead : circuits::Component::Kind::kNeuron, u->layer, u->unit});
    order.push_back(u);
  }
  for (auto* u : cand)
    if (ends(u->hook, ":sae")) feats.push_back(u->unit), order.push_back(u);
  cand = order;
  const auto clean = circuits::ablated_bits(m, text, run, {}, nullptr);
  std::vector<std::vector<double>> bits_of;
  if (!set.empty()) {
    const auto ref = circuits::collect_reference(m, text, set, circuits::Mode::kMean, run.streams, run.window, 0);
    bits_of = circuits::sweep_bits(m, text, run, set, &ref);
  }
  if (!feats.empty()) {
    const auto fb = analysis::feature_ablation_bits(m, *sae, sae_hook, text, run.stream_options(), feats);
    bits_of.insert(bits_of.end(), fb.begin(), fb.end());
  }
  Ablated ablated;
  const int64_t bootstrap = AblationRun{}.bootstrap;
  if (o.ablate_positions.empty()) {
    for (size_t i = 0; i < cand.size(); ++i)
      ablated[cand[i]] = circuits::delta_stats(clean, bits_of[i], static_cast<int64_t>(text.size()), bootstrap, 0);
    return ablated;
  }
  const int64_t B = model::resolve_streams(text.size(), run.streams);
  const int64_t W = model::resolve_window_policy(m.config, run.stream_options()).first;
  const auto mask = circuits::token_mask(m, text, run, analysis::byte_mask(text, o.ablate_positions, B, W));
  CCC_CHECK(mask.positions > 0, o.dump, ": the positions selected (", o.ablate_positions.describe(), ") hold no coded token");
  for (size_t i = 0; i < cand.size(); ++i)
    ablated[cand[i]] = circuits::delta_stats(circuits::masked(clean, mask), circuits::masked(bits_of[i], mask), mask.bytes,
                                             bootstrap, 0);
  return ablated;
}

void write_units_csv(const std::string& out_dir, const analysis::UnitsReport& rep, const Ablated& ablated) {
  const size_t F = rep.features.size();
  auto fname = [&](int f) { return csv_field(feature_name(rep, f)); };  // RFC 4180: names may hold , " or newlines
  auto au = auroc_of;
  std::ostringstream csv;
  csv << "hook,layer,unit,mean,std,frac_active,kurtosis,max,top_feature,top_auroc,top_smd,top_coverage,"
         "second_feature,second_auroc,class,null_class,null_top_auroc,down_feature,down_auroc,delta_bits,delta_bits_per_byte";
  for (const auto& f : rep.features) csv << "," << csv_field("auroc:" + f);
  csv << "\n";
  for (const auto& u : rep.units) {
    const double cov = u.top_feature >= 0 ? u.coverage[rep.concept_of[u.top_feature]] : NAN;
    csv << csv_field(u.hook) << "," << u.layer << "," << u.unit << "," << fmt(u.mean, 6) << "," << fmt(u.std, 6) << ","
        << fmt(u.frac_active, 6) << "," << fmt(u.kurtosis, 4) << "," << fmt(u.max, 6) << "," << fname(u.top_feature)
        << "," << fmt(au(u, u.top_feature)) << "," << fmt(u.top_feature >= 0 ? u.smd[u.top_feature] : NAN) << ","
        << fmt(cov) << "," << fname(u.second_feature) << "," << fmt(au(u, u.second_feature)) << "," << u.cls << ","
        << u.null_cls << "," << fmt(u.null_top_auroc) << "," << fname(u.down_feature) << ","
        << fmt(au(u, u.down_feature));
    auto it = ablated.find(&u);
    if (it != ablated.end()) csv << "," << fmt(it->second.delta_bits, 3) << "," << fmt(it->second.delta_bits_per_byte, 6);
    else csv << ",,";
    for (size_t f = 0; f < F; ++f) csv << "," << fmt(u.auroc[f]);
    csv << "\n";
  }
  write_file_atomic((fs::path(out_dir) / "units.csv").string(), csv.str());
}

// Unit counts per hook and class, and under the null.
struct ClassCounts {
  std::vector<std::string> hooks;  ///< in the report's order
  std::map<std::string, std::map<std::string, int64_t>> counts, null_counts;
};

ClassCounts class_counts(const analysis::UnitsReport& rep) {
  ClassCounts c;
  for (const auto& u : rep.units) {
    if (std::find(c.hooks.begin(), c.hooks.end(), u.hook) == c.hooks.end()) c.hooks.push_back(u.hook);
    c.counts[u.hook][u.cls]++;
    c.null_counts[u.hook][u.null_cls]++;
  }
  return c;
}

nlohmann::json units_summary(const UnitsCmdOptions& o, const analysis::ActivationStore& store, const std::string& source,
                             const analysis::UnitsReport& rep, ClassCounts cc, const Ablated& ablated) {
  auto fname = [&](int f) { return feature_name(rep, f); };
  auto au = auroc_of;
  auto& counts = cc.counts;
  auto& null_counts = cc.null_counts;
  const auto& classes = kClasses;
  nlohmann::json summary;
  summary["dump"] = o.dump;
  summary["source"] = source;
  summary["fingerprint"] = store.attr("fingerprint");
  summary["rows_analysed"] = rep.rows;
  summary["null_shift_rows"] = rep.null_shift;
  summary["features"] = rep.features;
  for (size_t c = 0; c < rep.concepts.size(); ++c)
    summary["concepts"].push_back({{"name", rep.concepts[c]}, {"base_rate", rep.base_rate[c]}});
  summary["thresholds"] = {{"active_threshold", o.units.active_threshold}, {"mono_auroc", o.units.mono_auroc},
                           {"mono_coverage", o.units.mono_coverage}, {"poly_auroc", o.units.poly_auroc},
                           {"poly_share", o.units.poly_share}, {"min_smd", o.units.min_smd}, {"related_phi", o.units.related_phi},
                           {"min_positives", o.units.min_positives},
                           {"top_k", o.units.top_k}};
  nlohmann::json total = nlohmann::json::object(), total_null = nlohmann::json::object();
  for (const auto& c : classes) total[c] = total_null[c] = 0;
  for (const auto& h : cc.hooks) {
    nlohmann::json jh = {{"hook", h}};
    for (const auto& c : classes) {
      jh["counts"][c] = counts[h][c];
      jh["null_counts"][c] = null_counts[h][c];
      total[c] = total[c].get<int64_t>() + counts[h][c];
      total_null[c] = total_null[c].get<int64_t>() + null_counts[h][c];
    }
    summary["hooks"].push_back(jh);
  }
  for (const auto& [u, d] : ablated)
    summary["ablated"].push_back({{"hook", u->hook}, {"unit", u->unit}, {"class", u->cls},
                                  {"top_feature", fname(u->top_feature)}, {"top_auroc", au(*u, u->top_feature)},
                                  {"delta_bits", d.delta_bits}, {"delta_bits_per_byte", d.delta_bits_per_byte},
                                  {"ci_low", d.ci_low}, {"ci_high", d.ci_high}});
  if (!ablated.empty())
    summary["ablated_positions"] = o.ablate_positions.empty() ? "all" : o.ablate_positions.describe();
  summary["counts"] = total;
  summary["null_counts"] = total_null;
  return summary;
}

void write_units_report(const std::string& out_dir, const UnitsCmdOptions& o, const analysis::ActivationStore& store,
                        const std::string& source, const std::string& text, const analysis::UnitsReport& rep,
                        ClassCounts cc, const Ablated& ablated) {
  auto fname = [&](int f) { return feature_name(rep, f); };
  auto au = auroc_of;
  auto& counts = cc.counts;
  auto& null_counts = cc.null_counts;
  const auto& classes = kClasses;
  const auto& hooks = cc.hooks;
  const auto offsets = store.byte_offsets();
  const auto streams = store.streams();
  const auto bits = store.bits();
  std::vector<const analysis::UnitResult*> mono, poly;
  for (const auto& u : rep.units) {
    if (u.cls == "monosemantic") mono.push_back(&u);
    if (u.cls == "polysemantic") poly.push_back(&u);
  }
  std::sort(mono.begin(), mono.end(), [&](auto* a, auto* b) { return au(*a, a->top_feature) > au(*b, b->top_feature); });
  std::sort(poly.begin(), poly.end(), [&](auto* a, auto* b) {
    return std::min(au(*a, a->top_feature), au(*a, a->second_feature)) >
           std::min(au(*b, b->top_feature), au(*b, b->second_feature));
  });
  const auto tokens = store.tokens();
  auto contexts = [&](const analysis::UnitResult& u, std::ostringstream& md) {
    md << "```\n";
    for (size_t k = 0; k < std::min<size_t>(10, u.top_rows.size()); ++k) {
      const int64_t r = u.top_rows[k];
      const int64_t off = offsets[r];
      // the token's bytes run to the next row's offset of the same stream (one byte for byte models)
      int64_t end = off + 1;
      if (r + 1 < static_cast<int64_t>(offsets.size()) && streams[r + 1] == streams[r] && offsets[r + 1] > off)
        end = offsets[r + 1];
      const int64_t lo = std::max<int64_t>(0, off - 30), hi = std::min<int64_t>(text.size(), end + 30);
      char head[96];
      std::snprintf(head, sizeof head, "%8.3f  %6.2f bits  ", u.top_values[k], bits[r]);
      md << head << render(std::string_view(text).substr(lo, off - lo)) << "⟦"
         << render(std::string_view(text).substr(off, end - off)) << "⟧" << render(std::string_view(text).substr(end, hi - end))
         << "\n";
    }
    md << "```\n\n";
  };
  std::ostringstream md;
  md << "# Units of " << o.dump << "\n\n"
     << "Source `" << source << "` (" << text.size() << " bytes), " << rep.rows << " rows analysed, model fingerprint `"
     << store.attr("fingerprint").substr(0, 16) << "`. Null: labels circularly shifted by " << rep.null_shift
     << " rows.\n\n## Counts per hook (null in parentheses)\n\n| hook |";
  for (const auto& c : classes) md << " " << c << " |";
  md << "\n|---|";
  for (size_t c = 0; c < classes.size(); ++c) md << "---:|";
  md << "\n";
  for (const auto& h : hooks) {
    md << "| " << h << " |";
    for (const auto& c : classes) md << " " << counts[h][c] << " (" << null_counts[h][c] << ") |";
    md << "\n";
  }
  md << "\n## Concepts (related features grouped) and base rates\n\n";
  for (size_t c = 0; c < rep.concepts.size(); ++c) md << "- " << rep.concepts[c] << ": " << fmt(rep.base_rate[c], 4) << "\n";
  auto section = [&](const char* title, const std::vector<const analysis::UnitResult*>& list) {
    md << "\n## " << title << "\n\n";
    if (list.empty()) md << "(none)\n";
    for (size_t i = 0; i < std::min<size_t>(10, list.size()); ++i) {
      const auto& u = *list[i];
      md << "### " << u.hook << " unit " << u.unit << "\n\n" << u.cls << ": " << fname(u.top_feature) << " AUROC "
         << fmt(au(u, u.top_feature), 3) << " (SMD " << fmt(u.smd[u.top_feature], 2) << ", top-" << u.top_rows.size()
         << " coverage " << fmt(u.coverage[rep.concept_of[u.top_feature]], 2) << ")";
      if (u.second_feature >= 0) md << "; next concept: " << fname(u.second_feature) << " AUROC " << fmt(au(u, u.second_feature), 3);
      md << "; mean " << fmt(u.mean, 3) << ", frac_active " << fmt(u.frac_active, 3) << ", kurtosis " << fmt(u.kurtosis, 1)
         << "\n\nTop activations (value, bits of the row's token, context with the token in ⟦ ⟧):\n\n";
      contexts(u, md);
    }
  };
  section("Most monosemantic units (by AUROC of their feature)", mono);
  section("Most polysemantic units (by AUROC of their second concept)", poly);
  std::vector<const analysis::UnitResult*> down;
  for (const auto& u : rep.units)
    if (u.down_feature >= 0) down.push_back(&u);
  std::sort(down.begin(), down.end(), [&](auto* a, auto* b) { return au(*a, a->down_feature) < au(*b, b->down_feature); });
  md << "\n## Downward-selective units (silent on a feature: AUROC <= " << fmt(1 - o.units.mono_auroc, 2)
     << ", SMD <= -" << fmt(o.units.min_smd, 2) << "; " << down.size() << " in all)\n\n";
  if (down.empty()) md << "(none)\n";
  else md << "| unit | class | feature | AUROC | SMD |\n|---|---|---|---:|---:|\n";
  for (size_t i = 0; i < std::min<size_t>(20, down.size()); ++i) {
    const auto& u = *down[i];
    md << "| " << u.hook << " " << u.unit << " | " << u.cls << " | " << fname(u.down_feature) << " | "
       << fmt(au(u, u.down_feature), 4) << " | " << fmt(u.smd[u.down_feature], 2) << " |\n";
  }
  if (!ablated.empty()) {
    md << "\n## Mean-ablating the most selective units (bits of the dumped text, the dump's policy)\n\n"
       << "Positions counted: " << (o.ablate_positions.empty() ? "all" : o.ablate_positions.describe()) << ".\n\n"
       << "| unit | class | feature (AUROC) | delta_bits | delta_bits_per_byte (95% CI) |\n|---|---|---|---:|---:|\n";
    std::vector<std::pair<const analysis::UnitResult*, circuits::DeltaStats>> rows(ablated.begin(), ablated.end());
    std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.delta_bits > b.second.delta_bits; });
    for (const auto& [u, d] : rows)
      md << "| " << u->hook << " " << u->unit << " | " << u->cls << " | " << fname(u->top_feature) << " ("
         << fmt(au(*u, u->top_feature), 3) << ") | " << fmt(d.delta_bits, 1) << " | " << fmt(d.delta_bits_per_byte, 5)
         << " [" << fmt(d.ci_low, 5) << ", " << fmt(d.ci_high, 5) << "] |\n";
  }
  write_file_atomic((fs::path(out_dir) / "report.md").string(), md.str());
}

// class counts per hook and the AUROC histogram with the null (PNG; a warning when gnuplot fails)
void write_units_plots(const std::string& out_dir, const analysis::UnitsReport& rep, ClassCounts cc,
                       const std::string& about) {
  auto au = auroc_of;
  auto& counts = cc.counts;
  auto& null_counts = cc.null_counts;
  const auto& classes = kClasses;
  const auto& hooks = cc.hooks;
  Plot plot;
  std::ostringstream d;
  d << "hook dead monosemantic polysemantic unexplained null_monosemantic\n";
  for (const auto& h : hooks) {
    std::string label = h;
    for (auto& ch : label)
      if (ch == ' ') ch = '_';
    d << label;
    for (const auto& c : classes) d << " " << counts[h][c];
    d << " " << null_counts[h]["monosemantic"] << "\n";
  }
  const std::string dat = plot.data("class_counts.dat", d.str());
  if (!plot.render((fs::path(out_dir) / "class_counts.png").string(),
                "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
                "set key autotitle columnhead outside right top noenhanced\nset xtics rotate by -30 noenhanced\n"
                "set ylabel 'units (log scale)'\nset logscale y\nset yrange [0.8:*]\n"
                "set title " + gp_quote("unit classes per hook (null: labels shifted) - " + about) + " noenhanced\n"
                "plot " + dat + " using ($2 > 0 ? $2 : 0.8):xtic(1), '' using ($3 > 0 ? $3 : 0.8), '' using ($4 > 0 ? $4 : 0.8), "
                "'' using ($5 > 0 ? $5 : 0.8), '' using ($6 > 0 ? $6 : 0.8)",  // a zero sits on the axis (a column of zeros is no error)
                1200, 600))
    std::fprintf(stderr, "warning: gnuplot failed; no class_counts.png\n");
  std::vector<int64_t> real(21, 0), null(21, 0);
  for (const auto& u : rep.units) {
    if (u.cls == "dead" || u.top_feature < 0) continue;
    auto bin = [](double a) { return std::clamp<int>(static_cast<int>(std::floor((a - 0.5) / 0.025)), 0, 20); };
    real[bin(au(u, u.top_feature))]++;
    if (!std::isnan(u.null_top_auroc)) null[bin(u.null_top_auroc)]++;
  }
  std::ostringstream h;
  h << "auroc units null\n";
  for (int b = 0; b < 21; ++b) h << fmt(0.5 + 0.025 * b + 0.0125, 4) << " " << real[b] << " " << null[b] << "\n";
  const std::string hist = plot.data("auroc_hist.dat", h.str());
  if (!plot.render((fs::path(out_dir) / "auroc_hist.png").string(),
                "set key autotitle columnhead\nset style fill solid 0.5 border -1\nset boxwidth 0.022\n"
                "set xlabel 'best feature AUROC of the unit'\nset ylabel 'units'\nset xrange [0.5:1.03]\n"
                "set title " + gp_quote("selectivity: units vs shifted-label null - " + about) + " noenhanced\n"
                "plot " + hist + " using 1:2 with boxes, '' using 1:3 with boxes"))
    std::fprintf(stderr, "warning: gnuplot failed; no auroc_hist.png\n");
}

}  // namespace

// The coverage figures (analysis::coverage_summary) as JSON.
nlohmann::json superposition_summary(const analysis::UnitsReport& rep, const std::vector<std::string>& hooks, double coverage) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : analysis::coverage_summary(rep, hooks, coverage))
    out.push_back({{"hook", c.hook}, {"live", c.live}, {"share_covered", c.share_covered},
                   {"share_covered_null", c.share_covered_null}, {"median_coverage", c.median_coverage},
                   {"median_coverage_null", c.median_coverage_null}, {"median_frac_active", c.median_frac_active}});
  return out;
}

void run_units(const UnitsCmdOptions& o) {
  analysis::ActivationStore store(o.dump);
  const std::string out_dir = o.out_dir.empty() ? fs::path(o.dump).replace_extension("").string() + "-units" : o.out_dir;
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(fs::path(out_dir) / "units.csv", ec), out_dir,
            "/units.csv exists (use --force to replace the analysis)");
  std::string source;
  const std::string text = checked_source_text(o, store, &source);
  store.check_text_size(text.size());
  const size_t n_features = analysis::auto_feature_count() + o.features.size() + o.labels.size() * analysis::kMaxFeatures;
  check_memory(analysis::units_memory_bytes(store.rows(), std::min(n_features, analysis::kMaxFeatures + 1), o.units),
               o.max_memory, "units " + o.dump);
  const auto features = unit_features(o, store, text);
  std::unique_ptr<ProgressLine> progress;
  auto uopt = o.units;
  uopt.progress = [&](int64_t done, int64_t total) {
    if (!progress) progress = std::make_unique<ProgressLine>("units", total, !o.quiet);
    progress->update(done);
  };
  // --sae: the dictionary's features beside the units of its hook, on the same rows and features
  std::unique_ptr<analysis::Sae> sae;
  std::string sae_hook;
  if (!o.sae.empty()) {
    nlohmann::json meta;
    sae = std::make_unique<analysis::Sae>(analysis::load_sae(o.sae, &meta));
    sae_hook = meta.value("hook", "");
    CCC_CHECK(meta.value("model_fingerprint", "") == store.attr("fingerprint"), o.sae, ": trained on another model than ",
              o.dump, "'s (fingerprint ", meta.value("model_fingerprint", "").substr(0, 16), ", the dump's ",
              store.attr("fingerprint").substr(0, 16), ")");
    if (uopt.hooks.empty()) uopt.hooks = {sae_hook};
    uopt.derived.push_back(analysis::sae_feature_units(*sae, sae_hook));
  }
  const auto rep = analysis::analyze_units(store, features, uopt);
  const Ablated ablated = o.ablate_top > 0 ? ablate_top_units(o, store, text, rep, sae.get(), sae_hook) : Ablated{};
  // every file is built in a private temporary directory and published together (none on an error)
  OutputDir out(out_dir, o.force);
  const auto cc = class_counts(rep);
  write_units_csv(out.temp_dir(), rep, ablated);
  write_units_report(out.temp_dir(), o, store, source, text, rep, cc, ablated);
  write_units_plots(out.temp_dir(), rep, cc,
                    fs::path(store.attr("model")).filename().string() + " on " + fs::path(source).filename().string());
  auto summary = units_summary(o, store, source, rep, cc, ablated);
  if (sae) summary["superposition"] = superposition_summary(rep, {sae_hook, sae_hook + ":sae"}, o.units.mono_coverage);
  stamp(summary, "units");
  write_file_atomic(out.file("summary.json"), summary.dump(2) + "\n");
  out.commit();
  if (o.quiet) return;
  const auto& hooks = cc.hooks;
  auto counts = cc.counts, null_counts = cc.null_counts;
  std::printf("%lld units of %zu hooks over %lld rows, %zu features in %zu concepts\n", (long long)rep.units.size(),
              hooks.size(), (long long)rep.rows, rep.features.size(), rep.concepts.size());
  std::printf("%-32s %8s %8s %8s %8s   (null: mono poly)\n", "hook", "dead", "mono", "poly", "unexpl");
  for (const auto& h : hooks)
    std::printf("%-32s %8lld %8lld %8lld %8lld   (%lld %lld)\n", h.c_str(), (long long)counts[h]["dead"],
                (long long)counts[h]["monosemantic"], (long long)counts[h]["polysemantic"],
                (long long)counts[h]["unexplained"], (long long)null_counts[h]["monosemantic"],
                (long long)null_counts[h]["polysemantic"]);
  if (sae) {  // neurons vs features, as shares of each
    const auto& sp = summary["superposition"];
    for (const auto& h : sp)
      std::printf("%-32s live %lld: top concept covers >= %.2f of the top-%lld rows for %.4f (null %.4f); median coverage "
                  "%.3f (null %.3f), median share of rows active %.4f\n", h["hook"].get<std::string>().c_str(),
                  (long long)h["live"].get<int64_t>(), o.units.mono_coverage, (long long)o.units.top_k,
                  h["share_covered"].get<double>(), h["share_covered_null"].get<double>(), h["median_coverage"].get<double>(),
                  h["median_coverage_null"].get<double>(), h["median_frac_active"].get<double>());
    std::printf("%-32s %8s %8s %8s %8s   (null: mono poly)  [shares]\n", "", "dead", "mono", "poly", "unexpl");
    for (const auto& h : {sae_hook, sae_hook + ":sae"}) {
      double n = 0;
      for (const auto& [cls, c] : counts[h]) n += static_cast<double>(c);
      auto sh = [&](int64_t c) { return n > 0 ? static_cast<double>(c) / n : 0.0; };
      std::printf("%-32s %8.4f %8.4f %8.4f %8.4f   (%.4f %.4f)\n", h.c_str(), sh(counts[h]["dead"]),
                  sh(counts[h]["monosemantic"]), sh(counts[h]["polysemantic"]), sh(counts[h]["unexplained"]),
                  sh(null_counts[h]["monosemantic"]), sh(null_counts[h]["polysemantic"]));
    }
  }
  std::printf("wrote %s/{units.csv,summary.json,report.md,class_counts.png,auroc_hist.png}\n", out_dir.c_str());
}

void run_heldout(const HeldoutCmdOptions& o) {
  const std::string dir = corpora_dir_or_default(o.corpora_dir);
  std::vector<std::string> names = o.corpora.empty() ? model::present_corpora(dir) : o.corpora;
  CCC_CHECK(!names.empty(), "no corpus found in ", dir, " (run ./setup.sh, or pass --corpora DIR)");
  CCC_CHECK(o.bytes > 0, "--bytes must be positive");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  const auto mix = model::held_out_mix(dir, names, static_cast<size_t>(o.bytes));
  const std::string& text = mix.text;
  std::string labels = "feature,start,end\n";
  for (const auto& r : mix.ranges) {
    const std::string range = "," + std::to_string(r.begin) + "," + std::to_string(r.end) + "\n";
    labels += "domain:" + r.domain + range + "corpus:" + r.corpus + range;
  }
  // both files written in full before either is published
  OutputFile text_out(o.out, o.force), labels_out(o.out + ".labels.csv", o.force);
  text_out.write(text);
  labels_out.write(labels);
  text_out.commit();
  labels_out.commit();
  std::printf("wrote %s (%zu bytes of %zu held-out corpora) and %s.labels.csv (domain:* and corpus:* ranges)\n",
              o.out.c_str(), text.size(), names.size(), o.out.c_str());
}

}  // namespace ccc::experiments
