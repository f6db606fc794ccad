#include "experiments/commands/sae_cmd.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "analysis/sae.h"
#include "analysis/sae_eval.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/formats/loader.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

// The dump's hook checked and its width; the training options of the command.
int64_t hook_width(const analysis::ActivationStore& store, const std::string& dump, const std::string& hook) {
  const auto& hooks = store.hooks();
  CCC_CHECK(std::find(hooks.begin(), hooks.end(), hook) != hooks.end(), dump, ": no hook ", hook, " (it holds ",
            nlohmann::json(hooks).dump(), ")");
  int64_t d = 1;
  for (int64_t x : store.row_shape(hook)) d *= x;
  return d;
}

analysis::SaeTrainOptions train_options(const SaeTrainCmdOptions& o, int64_t d) {
  analysis::SaeTrainOptions t;
  t.arch = analysis::parse_sae_arch(o.arch);
  t.d_sae = o.expansion * d;
  t.k = o.k;
  t.l1 = o.l1;
  t.l1_warmup = o.l1_warmup;
  t.steps = o.steps;
  t.batch = o.batch;
  t.lr = o.lr;
  t.seed = o.seed;
  t.resample_every = o.resample_every;
  t.scale_rows = std::min<int64_t>(8192, o.buffer);
  t.log_every = std::max<int64_t>(1, std::min<int64_t>(100, o.steps / 10));
  if (o.progress)
    t.progress = [steps = o.steps](const nlohmann::json& p) {
      std::fprintf(stderr, "sae train: step %lld/%lld  mse %.4g  explained variance %.4f  L0 %.1f  dead %.3f  %.0f rows/s\n",
                   static_cast<long long>(p["step"].get<int64_t>()), static_cast<long long>(steps), p["mse"].get<double>(),
                   p["explained_variance"].get<double>(), p["l0"].get<double>(), p["dead_fraction"].get<double>(),
                   p["rows_per_second"].get<double>());
    };
  return t;
}

nlohmann::json train_meta(const SaeTrainCmdOptions& o, const analysis::ActivationStore& store) {
  return {{"hook", o.hook},
          {"dump", o.dump},
          {"model", store.attr("model")},
          {"model_fingerprint", store.attr("fingerprint")},
          {"hyperparameters",
           {{"expansion", o.expansion}, {"k", o.k}, {"l1", o.l1}, {"l1_warmup", o.l1_warmup}, {"steps", o.steps},
            {"batch", o.batch}, {"lr", o.lr}, {"buffer_rows", o.buffer}, {"seed", o.seed}, {"resample_every", o.resample_every}}},
          {"command", o.command}};
}

}  // namespace

void run_sae_train(const SaeTrainCmdOptions& o) {
  CCC_CHECK(!o.out.empty(), "sae train: -o SAE_DIR is required");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  analysis::ActivationStore store(o.dump);
  const int64_t d = hook_width(store, o.dump, o.hook);
  const auto t = train_options(o, d);
  analysis::SaeTrainMetrics metrics;
  const auto sae = analysis::train_sae(analysis::dump_batches(store, o.hook, o.buffer, o.seed), t, &metrics);
  nlohmann::json meta = train_meta(o, store);
  meta["training"] = metrics.to_json();
  stamp(meta, "sae");
  OutputDir out(o.out, o.force);  // sae.safetensors and sae.json appear together
  analysis::save_sae(sae, out.temp_dir(), meta);
  out.commit();
  std::printf("%s: %s dictionary of %lld latents on %s (d_in %lld), %lld steps x %lld rows: explained variance %.4f, L0 %.1f, "
              "dead %.3f, %.0f rows/s\n", o.out.c_str(), o.arch.c_str(), static_cast<long long>(t.d_sae), o.hook.c_str(),
              static_cast<long long>(d), static_cast<long long>(o.steps), static_cast<long long>(o.batch),
              metrics.explained_variance, metrics.l0, metrics.dead_fraction, metrics.rows_per_second);
}

void run_sae_eval(const SaeEvalCmdOptions& o) {
  nlohmann::json meta;
  const auto sae = analysis::load_sae(o.sae, &meta);
  const std::string hook = meta.value("hook", "");
  CCC_CHECK(!hook.empty(), o.sae, "/sae.json: no hook named");
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  const std::string fp = meta.value("model_fingerprint", "");
  CCC_CHECK(fp.empty() || fp == m.fingerprint, o.sae, ": trained on the model with fingerprint ", fp.substr(0, 16),
            "..., not ", m.source, " (", m.fingerprint.substr(0, 16), "...); pass -m");
  const std::string text = read_input(o.file);
  model::StreamOptions so;
  so.streams = o.streams;
  so.window = o.window;
  so.strided = o.strided;
  const auto e = analysis::evaluate_sae(m, sae, hook, text, so);
  if (o.json) {
    nlohmann::json j = e.to_json();
    j["sae"] = o.sae;
    j["hook"] = hook;
    j["file"] = o.file;
    j["model"] = m.source;
    j["scoring"] = model::describe_policy(m.config, so) + ", " +
                   std::to_string(model::resolve_streams(text.size(), o.streams)) + " streams";
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  auto bpb = [&](double b) { return b / static_cast<double>(std::max<int64_t>(1, e.bytes)); };
  std::printf("%s on %s (%s): %lld bytes, %lld positions spliced\n"
              "  l0 %.2f  explained_variance %.4f  dead_fraction %.4f  dense_fraction %.4f\n"
              "  bits_clean %.1f (%.4f bits/byte)\n  bits_sae   %.1f (%.4f bits/byte)\n"
              "  bits_zero  %.1f (%.4f bits/byte)\n  bits_mean  %.1f (%.4f bits/byte)\n"
              "  bits_recovered %.4f (against zero)  %.4f (against mean)\n",
              o.sae.c_str(), o.file.c_str(), hook.c_str(), static_cast<long long>(e.bytes), static_cast<long long>(e.rows),
              e.l0, e.explained_variance, e.dead_fraction, e.dense_fraction, e.bits_clean, bpb(e.bits_clean), e.bits_sae,
              bpb(e.bits_sae), e.bits_zero, bpb(e.bits_zero), e.bits_mean, bpb(e.bits_mean), e.bits_recovered,
              e.bits_recovered_mean);
}

void run_sae_sweep(const SaeSweepCmdOptions& o) {
  const auto& tr = o.train;
  std::error_code ec;
  CCC_CHECK(tr.force || !fs::exists(tr.out, ec), tr.out, " exists (use --force to replace it)");
  analysis::ActivationStore store(tr.dump);
  const int64_t d = hook_width(store, tr.dump, tr.hook);
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  CCC_CHECK(m.fingerprint == store.attr("fingerprint"), m.source, ": not the model of ", tr.dump, " (fingerprint ",
            m.fingerprint.substr(0, 16), ", the dump's ", store.attr("fingerprint").substr(0, 16), "); pass -m");
  const std::string text = read_input(o.eval);
  analysis::SaeSweepSpec spec;
  for (const auto& a : o.archs) spec.archs.push_back(analysis::parse_sae_arch(a));
  spec.ks = o.ks;
  spec.l1s = o.l1s;
  model::StreamOptions so;
  so.streams = o.streams;
  so.window = o.window;
  OutputDir out(tr.out, tr.force);  // every dictionary, the CSV, JSON and plot appear together
  auto name = [](const analysis::SaeSweepPoint& p) {
    char v[32];
    std::snprintf(v, sizeof v, p.arch == analysis::SaeArch::kRelu ? "l1-%g" : "k%.0f", p.value);
    return analysis::to_string(p.arch) + "-" + v;
  };
  auto saved = [&](const analysis::SaeSweepPoint& p, size_t i, size_t n) {
    auto meta = train_meta(tr, store);
    meta["hyperparameters"]["k"] = p.arch == analysis::SaeArch::kRelu ? tr.k : static_cast<int64_t>(p.value);
    meta["hyperparameters"]["l1"] = p.arch == analysis::SaeArch::kRelu ? p.value : tr.l1;
    meta["training"] = p.train.to_json();
    meta["eval"] = p.eval.to_json();
    stamp(meta, "sae");
    analysis::save_sae(p.sae, out.file(name(p)), meta);
    if (tr.progress)
      std::fprintf(stderr, "sae sweep: %zu/%zu %s: L0 %.1f, bits_recovered %.4f, explained variance %.4f, dead %.4f\n", i + 1, n,
                   name(p).c_str(), p.eval.l0, p.eval.bits_recovered, p.eval.explained_variance, p.eval.dead_fraction);
  };
  const auto points = analysis::sweep_sae([&] { return analysis::dump_batches(store, tr.hook, tr.buffer, tr.seed); },
                                          train_options(tr, d), spec, m, tr.hook, text, so, saved);
  std::string csv = "arch,k,l1,l0,explained_variance,dead_fraction,dense_fraction,bits_clean,bits_sae,bits_zero,bits_mean,"
                    "bits_recovered,bits_recovered_mean,train_explained_variance,rows_per_second\n";
  nlohmann::json j = {{"dump", tr.dump}, {"hook", tr.hook}, {"eval", o.eval}, {"model", m.source}, {"points", nlohmann::json::array()}};
  std::map<std::string, std::string> dat;  // per arch: "l0 recovered" lines for the plot
  for (const auto& p : points) {
    const auto& e = p.eval;
    char line[512];
    std::snprintf(line, sizeof line, "%s,%s,%s,%.4f,%.6f,%.6f,%.6f,%.3f,%.3f,%.3f,%.3f,%.6f,%.6f,%.6f,%.1f\n",
                  analysis::to_string(p.arch).c_str(),
                  p.arch == analysis::SaeArch::kRelu ? "" : std::to_string(static_cast<int64_t>(p.value)).c_str(),
                  p.arch == analysis::SaeArch::kRelu ? std::to_string(p.value).c_str() : "", e.l0, e.explained_variance,
                  e.dead_fraction, e.dense_fraction, e.bits_clean, e.bits_sae, e.bits_zero, e.bits_mean, e.bits_recovered,
                  e.bits_recovered_mean, p.train.explained_variance, p.train.rows_per_second);
    csv += line;
    j["points"].push_back(p.to_json());
    dat[analysis::to_string(p.arch)] += std::to_string(e.l0) + " " + std::to_string(e.bits_recovered) + "\n";
  }
  stamp(j, "sae-sweep");
  write_file_atomic(out.file("frontier.csv"), csv);
  write_file_atomic(out.file("frontier.json"), j.dump(2) + "\n");
  Plot plot;
  std::string body = "set xlabel 'L0 (active features per position)'\nset ylabel 'bits recovered (against zero ablation)'\n"
                     "set logscale x 2\nset key bottom right\nset grid\nset title " +
                     gp_quote("SAE frontier on " + tr.hook + " - " + fs::path(o.eval).filename().string()) + " noenhanced\nplot ";
  bool first = true;
  for (const auto& [arch, lines] : dat) {
    body += (first ? "" : ", ") + plot.data(arch + ".dat", lines) + " using 1:2 with linespoints lw 2 title " + gp_quote(arch);
    first = false;
  }
  if (!plot.render(out.file("frontier.png"), body)) std::fprintf(stderr, "warning: gnuplot failed; no frontier.png\n");
  out.commit();
  std::printf("%-12s %6s %8s %10s %10s %8s\n", "dictionary", "L0", "EV", "recovered", "rec(mean)", "dead");
  for (const auto& p : points)
    std::printf("%-12s %6.1f %8.4f %10.4f %10.4f %8.4f\n", name(p).c_str(), p.eval.l0, p.eval.explained_variance,
                p.eval.bits_recovered, p.eval.bits_recovered_mean, p.eval.dead_fraction);
  std::printf("wrote %s/{frontier.csv,frontier.json,frontier.png} and %zu dictionaries\n", tr.out.c_str(), points.size());
}

}  // namespace ccc::experiments
