// `ccc units` (unit classes of an activation dump) and `ccc heldout` (multi-domain held-out text + labels).

#include <memory>

#include "experiments/cli/cli.h"
#include "experiments/commands/sae_cmd.h"
#include "experiments/commands/units_cmd.h"

namespace ccc::cli {

void add_analysis_commands(CLI::App& app, Globals& g) {
  {
    auto* sae = app.add_subcommand("sae", "sparse autoencoders (dictionaries) on a dump's activations");
    sae->require_subcommand(1);
    // the training options shared by train and sweep
    auto train_args = [](CLI::App* sub, experiments::SaeTrainCmdOptions& o, bool sweep) {
      sub->add_option("dump", o.dump, "activation dump (.h5) from ccc dump or ccc compress --dump")->required();
      sub->add_option("--hook", o.hook, "the hook whose activations it reconstructs (e.g. blocks.4.mlp.hook_post)")->required();
      sub->add_option("-o,--out", o.out, sweep ? "output directory (frontier.csv, frontier.json, frontier.png, one directory per dictionary)"
                                               : "output directory (sae.safetensors, sae.json)")->required();
      if (!sweep) {
        sub->add_option("--arch", o.arch, "relu, topk (default) or batchtopk")->check(CLI::IsMember({"relu", "topk", "batchtopk"}));
        sub->add_option("--k", o.k, "active latents per row, topk / batchtopk (default 32)")->check(CLI::Range(1, 1 << 20));
        sub->add_option("--l1", o.l1, "relu: L1 coefficient after warm-up, on inputs scaled to E|x|^2 = d_in (default 5)");
      }
      sub->add_option("--expansion", o.expansion, "latents per input dimension (default 8)")->check(CLI::Range(1, 1 << 10));
      sub->add_option("--l1-warmup", o.l1_warmup, "relu: warm-up steps of the L1 coefficient (default 1000)");
      sub->add_option("--steps", o.steps, "optimiser steps (default 1000)")->check(CLI::Range(1, 1 << 30));
      sub->add_option("--batch", o.batch, "rows per step (default 4096)")->check(CLI::Range(1, 1 << 24));
      sub->add_option("--lr", o.lr, "Adam learning rate (default 4e-4)");
      sub->add_option("--buffer", o.buffer, "rows of the shuffle buffer (default 262144)")->check(CLI::Range(1, 1 << 30));
      sub->add_option("--seed", o.seed, "seed of the initialisation and the shuffle (default 0)");
      sub->add_option("--resample-every", o.resample_every, "restart latents dead for 1M rows on badly reconstructed rows every N steps (default 0: never; the auxiliary loss alone)")
          ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
      sub->add_flag("-f,--force", o.force, "replace an existing output directory");
      sub->add_flag_callback("-q,--quiet", [&o] { o.progress = false; }, "no progress lines");
    };
    auto o = std::make_shared<experiments::SaeTrainCmdOptions>();
    auto* sub = sae->add_subcommand("train", "train a sparse dictionary on one hook of a dump; SAELens-layout safetensors");
    train_args(sub, *o, false);
    sub->callback([&g, o] {
      g.init();
      o->command = g.command;
      experiments::run_sae_train(*o);
    });
    auto w = std::make_shared<experiments::SaeSweepCmdOptions>();
    auto* sw = sae->add_subcommand("sweep", "the frontier: a dictionary per k (topk) or L1 coefficient (relu), each evaluated in bits on held-out text");
    train_args(sw, w->train, true);
    sw->add_option("--eval", w->eval, "held-out text each dictionary is evaluated on (as ccc sae eval)")->required();
    add_model_options(sw, w->model, &w->tokenizer, "model of the dump (default: data/models/default)");
    sw->add_option("--archs", w->archs, "architectures, comma-separated: topk (default), batchtopk, relu")->delimiter(',')
        ->check(CLI::IsMember({"relu", "topk", "batchtopk"}));
    sw->add_option("--ks", w->ks, "k of each topk / batchtopk point (default 8,16,32,64)")->delimiter(',')->check(CLI::Range(1, 1 << 20));
    sw->add_option("--l1s", w->l1s, "L1 coefficient of each relu point (default 1,3,10)")->delimiter(',');
    sw->add_option("--streams", w->streams, "streams of the evaluation as in ccc compress (0 = automatic)")->check(CLI::Range(0, 1 << 30));
    sw->add_option("--window", w->window, "context window of the evaluation (0 = automatic)")->check(CLI::Range(0, 1 << 30));
    sw->callback([&g, w] {
      g.init();
      w->train.command = g.command;
      experiments::run_sae_sweep(*w);
    });
    auto e = std::make_shared<experiments::SaeEvalCmdOptions>();
    auto* ev = sae->add_subcommand("eval", "the dictionary spliced in at its hook while FILE is scored: bits against the clean, zeroed and mean-replaced hook");
    ev->add_option("sae", e->sae, "dictionary directory (sae.safetensors, sae.json) from ccc sae train")->required();
    ev->add_option("file", e->file, "held-out text to score ('-' = stdin)")->required();
    add_model_options(ev, e->model, &e->tokenizer, "model (default: data/models/default; must be the one the dictionary was trained on)");
    ev->add_option("--streams", e->streams, "streams as in ccc compress (0 = automatic)")->check(CLI::Range(0, 1 << 30));
    ev->add_option("--window", e->window, "context window W as in ccc compress (0 = automatic)")->check(CLI::Range(0, 1 << 30));
    ev->add_flag("--strided", e->strided, "the strided window policy");
    ev->add_flag("--json", e->json, "one JSON object");
    ev->callback([&g, e] { g.init(); experiments::run_sae_eval(*e); });
  }
  {
    auto o = std::make_shared<experiments::UnitsCmdOptions>();
    auto& u = o->units;
    auto* sub = app.add_subcommand("units", "per-unit statistics, feature selectivity (AUROC) and mono/polysemantic classes of a dump");
    sub->add_option("dump", o->dump, "activation dump (.h5) from ccc dump or ccc compress --dump")->required();
    sub->add_option("-o,--out", o->out_dir, "output directory (default: DUMP without .h5, plus -units)");
    sub->add_option("--hooks", u.hooks, "hook names or globs to analyse (repeatable; default every unit-bearing hook)");
    sub->add_option("--source", o->source, "the dumped text (default: the dump's source attribute; sha256 checked)");
    sub->add_option("--feature", o->features, "user feature NAME=REGEX (PCRE2; rows whose token starts in a match; repeatable)")
        ->allow_extra_args(false);  // one per occurrence: NAME=[ab] is a regex, not a CLI11 list
    sub->add_option("--labels", o->labels, "labels CSV: feature,start,end (byte offsets) or feature,row_start,row_end (repeatable)");
    sub->add_option("--active-threshold", u.active_threshold, "a unit is active on a row above this value (default 0)");
    sub->add_option("--mono-auroc", u.mono_auroc, "monosemantic: AUROC of its one concept (default 0.9)");
    sub->add_option("--mono-coverage", u.mono_coverage, "monosemantic: share of the top-k rows in that concept (default 0.8)");
    sub->add_option("--poly-auroc", u.poly_auroc, "polysemantic: AUROC of each of >= 2 concepts (default 0.8)");
    sub->add_option("--poly-share", u.poly_share, "polysemantic split: share of the top-k rows per concept (default 0.2)");
    sub->add_option("--min-smd", u.min_smd, "a feature counts for a class only with this standardised mean difference (default 0.5)");
    sub->add_option("--min-positives", u.min_positives,
                    "rows a feature needs on each side (positive and negative) to vote for a class (default 20)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    sub->add_option("--related-phi", u.related_phi, "features whose labels correlate at least this much are one concept (default 0.3)");
    sub->add_option("--top-k", u.top_k, "top activations per unit for coverage and contexts (default 100)")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--null-shift", u.null_shift, "label shift of the null in rows (default half the rows)");
    sub->add_option("--ablate-top", o->ablate_top, "mean-ablate the K most selective neurons / heads (with --sae: also the K most selective features, their decoder contribution removed) and report their delta_bits");
    sub->add_option("--sae", o->sae, "a dictionary (ccc sae train): its features analysed as units beside the neurons of its hook, same rows and features");
    add_position_options(sub, o->ablate_positions);  // what --ablate-top's delta_bits counts
    add_model_options(sub, o->model, &o->tokenizer,
                      "model of --ablate-top (default: data/models/default; must match the dump's fingerprint)");
    sub->add_flag("-f,--force", o->force, "replace an existing analysis in the output directory");
    sub->add_option("--max-memory", o->max_memory, "bytes the analysis may use (default: the memory available; its estimate is checked first)");
    sub->add_flag("-q,--quiet", o->quiet, "print nothing on success");
    sub->callback([&g, o] { g.init(); experiments::run_units(*o); });
  }
  {
    auto o = std::make_shared<experiments::HeldoutCmdOptions>();
    auto* sub = app.add_subcommand("heldout", "the held-out text of several corpora in one file, with domain / corpus labels");
    sub->add_option("-o,--out", o->out, "output text file (labels go to OUT.labels.csv)")->required();
    sub->add_option("--corpora", o->corpora_dir, "corpus directory (default as for train)");
    sub->add_option("--names", o->corpora, "corpora to include (default every present one)")->delimiter(',');
    sub->add_option("--bytes", o->bytes, "bytes per corpus from the start of its held-out split (default 20000)");
    sub->add_flag("-f,--force", o->force, "replace an existing output");
    sub->callback([&g, o] { g.init(); experiments::run_heldout(*o); });
  }
}

}  // namespace ccc::cli
