#include "experiments/commands/sae_cmd.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "analysis/sae.h"
#include "analysis/sae_eval.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/formats/loader.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

void run_sae_train(const SaeTrainCmdOptions& o) {
  CCC_CHECK(!o.out.empty(), "sae train: -o SAE_DIR is required");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  analysis::ActivationStore store(o.dump);
  int64_t d = 1;
  const auto& hooks = store.hooks();
  CCC_CHECK(std::find(hooks.begin(), hooks.end(), o.hook) != hooks.end(), o.dump, ": no hook ", o.hook, " (it holds ",
            nlohmann::json(hooks).dump(), ")");
  for (int64_t x : store.row_shape(o.hook)) d *= x;
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
  t.scale_rows = std::min<int64_t>(8192, o.buffer);
  t.log_every = std::max<int64_t>(1, std::min<int64_t>(100, o.steps / 10));
  if (o.progress)
    t.progress = [&](const nlohmann::json& p) {
      std::fprintf(stderr, "sae train: step %lld/%lld  mse %.4g  explained variance %.4f  L0 %.1f  dead %.3f  %.0f rows/s\n",
                   static_cast<long long>(p["step"].get<int64_t>()), static_cast<long long>(o.steps), p["mse"].get<double>(),
                   p["explained_variance"].get<double>(), p["l0"].get<double>(), p["dead_fraction"].get<double>(),
                   p["rows_per_second"].get<double>());
    };
  analysis::SaeTrainMetrics metrics;
  const auto sae = analysis::train_sae(analysis::dump_batches(store, o.hook, o.buffer, o.seed), t, &metrics);
  nlohmann::json meta = {{"hook", o.hook},
                         {"dump", o.dump},
                         {"model", store.attr("model")},
                         {"model_fingerprint", store.attr("fingerprint")},
                         {"hyperparameters",
                          {{"expansion", o.expansion}, {"k", o.k}, {"l1", o.l1}, {"l1_warmup", o.l1_warmup}, {"steps", o.steps},
                           {"batch", o.batch}, {"lr", o.lr}, {"buffer_rows", o.buffer}, {"seed", o.seed}}},
                         {"training", metrics.to_json()},
                         {"command", o.command}};
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

}  // namespace ccc::experiments
