// `ccc heads` (head detectors, emergence over checkpoints), `ccc icl` (in-context learning in bits),
// `ccc ablate`, `ccc sweep`, `ccc attribute`, `ccc patch`, `ccc discover` (circuits priced in bits).

#include <memory>

#include "experiments/cli/cli.h"
#include "experiments/commands/ablate_cmd.h"
#include "experiments/commands/experiment_cmd.h"
#include "experiments/commands/icl_cmd.h"
#include "experiments/commands/report_cmd.h"
#include "experiments/commands/study_cmd.h"
#include "model/base/error.h"

namespace ccc::cli {

void add_circuit_commands(CLI::App& app, Globals& g) {
  {
    auto o = std::make_shared<experiments::HeadsCmdOptions>();
    auto* sub = app.add_subcommand("heads", "per-head previous-token, induction and duplicate-token scores on [BOS, r, r]");
    add_model_options(sub, o->model, &o->tokenizer);
    sub->add_option("--seq-len", o->seq_len, "length L of the random sequence r (default 50)")->check(CLI::Range(2, 1 << 20));
    sub->add_option("--batch", o->batch, "sequences averaged (default 8)")->check(CLI::Range(1, 1 << 16));
    sub->add_option("--seed", o->seed, "seed of the random sequences (default 0)");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->add_option("--plot", o->plot_dir, "write heatmaps heads_prev_token.png, heads_induction.png, heads_duplicate_token.png to DIR");
    sub->add_flag("-f,--force", o->force, "replace existing heatmaps (and the emergence CSV / PNG)");
    sub->add_option("--checkpoints", o->checkpoints,
                    "emergence mode: score every RUN/checkpoints/step-N of a training run directory RUN, "
                    "with its loss log, into a CSV and PNG");
    sub->add_option("-o,--out", o->out, "emergence CSV (default RUN/emergence.csv; the PNG goes beside it)");
    sub->add_option("--corpora", o->corpora_dir, "corpus directory for the emergence ICL score");
    sub->callback([&g, o] { g.init(); experiments::run_heads(*o); });
  }
  {
    auto p = std::make_shared<experiments::MakeProbeCmdOptions>();
    auto* mk = app.add_subcommand("make-probe", "write a repeated-random-string probe text, its matched no-repeat text and its corrupt twin");
    mk->add_option("-o,--out", p->out, "the repeated text (lines: s s)")->required();
    mk->add_option("--norep", p->fresh_out, "the matched no-repeat text (lines: s t; default OUT with -norep)");
    mk->add_option("--corrupt", p->corrupt_out, "paired patching's corrupt text (lines: t s; default OUT with -corrupt)");
    mk->add_option("--len", p->len, "bytes per random string (default 50)")->check(CLI::Range(1, 1 << 20));
    mk->add_option("--strings", p->strings, "lines (default 40)")->check(CLI::Range(1, 1 << 20));
    mk->add_option("--seed", p->seed, "seed (default 0)");
    mk->add_flag("-f,--force", p->force, "replace existing files");
    mk->callback([p] { experiments::run_make_probe(*p); });
  }
  {
    auto o = std::make_shared<experiments::IclCmdOptions>();
    auto* sub = app.add_subcommand("icl", "in-context learning in bits: repeated spans, ICL score, bits vs position");
    sub->add_option("file", o->file, "text to draw spans and windows from (default: the held-out corpora)");
    add_model_options(sub, o->model, &o->tokenizer);
    sub->add_option("--corpora", o->corpora_dir, "corpus directory (default as for train)");
    sub->add_option("--span-len", o->icl.span_len, "bytes per repeated text span (default 200)")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--spans", o->icl.spans, "spans per source (default 8)")->check(CLI::Range(1, 1 << 16));
    sub->add_option("--random-len", o->icl.random_len, "bytes per repeated random string (default 50)")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--early", o->icl.early, "early ICL position (default 50)")->check(CLI::Range(2, 1 << 20));
    sub->add_option("--late", o->icl.late, "late ICL position (default 500, capped by the context)")->check(CLI::Range(3, 1 << 20));
    sub->add_option("--windows", o->icl.windows, "ICL windows in all (default 256)")->check(CLI::Range(1, 1 << 16));
    sub->add_option("--seed", o->icl.seed, "seed of the random strings");
    sub->add_flag("--json", o->json, "print one JSON object (with bits_by_position)");
    sub->add_option("--plot", o->plot, "write bits vs position to this PNG");
    sub->add_flag("-f,--force", o->force, "replace an existing --plot file");
    sub->callback([&g, o] { g.init(); experiments::run_icl(*o); });
  }
  auto run_options = [](CLI::App* sub, experiments::AblationRun& r, bool file_required = true) {
    auto* file = sub->add_option("file", r.file, "input text ('-' = standard input)");
    if (file_required) file->required();
    add_model_options(sub, r.model, &r.tokenizer);
    auto* mode = sub->add_option("--mode", r.mode,
                                 "zero (default), mean, resample, or corrupt (each component's value at the same "
                                 "position of a run over --corrupt; the default when --corrupt is given)");
    sub->add_option("--reference", r.reference, "reference text of mean / resample ablations (default: the input)");
    auto* corrupt = sub->add_option("--corrupt", r.corrupt,
                                    "corrupt text of the same token length as the input, for --mode corrupt "
                                    "(paired patching; rolling models)");
    // --corrupt alone means --mode corrupt; with another mode it would be read and ignored
    sub->parse_complete_callback([&r, mode, corrupt] {
      if (corrupt->count() == 0) return;
      if (mode->count() == 0) r.mode = "corrupt";
      CCC_CHECK(r.mode == "corrupt", "--corrupt goes with --mode corrupt (given: --mode ", r.mode, ")");
    });
    sub->add_option("--streams", r.streams, "streams as in ccc compress (0 = automatic)");
    sub->add_option("--window", r.window, "window as in ccc compress (0 = automatic)");
    sub->add_option("--seed", r.seed, "seed of resample draws and the bootstrap (default 0)");
    sub->add_flag_callback("-q,--quiet", [&r] { r.progress = false; }, "no progress line");
    sub->add_option("--bootstrap", r.bootstrap, "bootstrap resamples of the 95% CI (default 2000)")->check(CLI::Range(1, 1 << 24));
    add_position_options(sub, r.positions);
  };
  {
    auto o = std::make_shared<experiments::AblateCmdOptions>();
    auto* sub = app.add_subcommand("ablate", "bits of the input with a circuit ablated, against the clean model");
    run_options(sub, o->run);
    sub->add_option("-c,--components", o->components,
                    "components: L.H (head), attnL, mlpL, nL.N (neuron), comma-separated, or a JSON file {\"components\": [...]}")
        ->required();
    sub->add_flag("--per-token", o->per_token, "JSON with clean_bits and ablated_bits per coded token");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->callback([&g, o] { g.init(); experiments::run_ablate(*o); });
  }
  {
    auto o = std::make_shared<experiments::SweepCmdOptions>();
    auto* sub = app.add_subcommand("sweep", "delta bits of ablating each component of a set, batched");
    run_options(sub, o->run);
    sub->add_option("--over", o->over, "heads (default), attn, mlps or neurons:L");
    sub->add_option("--csv", o->csv, "also write the table as CSV");
    sub->add_option("--plot", o->plot, "PNG: heatmap (layers x heads) for heads, bars with CIs otherwise");
    sub->add_flag("-f,--force", o->force, "replace existing --csv / --plot files");
    sub->add_flag("--naive", o->naive, "one run per component instead of one batch row block each");
    sub->add_option("--partial", o->partial,
                    "keep completed passes in this file as they finish; a rerun resumes from it (removed when done)");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->callback([&g, o] { g.init(); experiments::run_sweep(*o); });
  }
  {
    auto o = std::make_shared<experiments::AttributeCmdOptions>();
    auto* sub = app.add_subcommand("attribute", "attribution patching: every component's delta bits from one forward + backward");
    run_options(sub, o->run);
    sub->add_option("--over", o->over, "heads (default), attn, mlps or neurons:L");
    sub->add_option("--order", o->order, "1: first order (as published); 2: + the empirical-Fisher curvature term (default)")
        ->check(CLI::IsMember({1, 2}));
    sub->add_flag("--check", o->check, "also run the exact batched sweep and print Spearman rho");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->callback([&g, o] { g.init(); experiments::run_attribute(*o); });
  }
  {
    auto o = std::make_shared<experiments::PatchCmdOptions>();
    auto* sub = app.add_subcommand(
        "patch",
        "activation patching: paired clean/corrupt patching of every component (--corrupt), or path patching "
        "of a sender's effect through one receiver (--sender)");
    run_options(sub, o->run, /*file_required=*/false);
    sub->add_option("--clean", o->run.file, "the clean text (the same as FILE)")->excludes(sub->get_option("file"));
    sub->add_option("--sender", o->sender, "path patching: the component ablated: L.H, attnL, mlpL or nL.N");
    sub->add_option("--receiver", o->receiver,
                    "path patching: the component it reaches: L.H, attnL, mlpL downstream of the sender, or logits "
                    "(default: the direct path)");
    sub->add_option("-c,--components", o->components, "paired patching: these components (default: --over heads)");
    sub->add_option("--over", o->over, "paired patching: every component of heads, attn, mlps or neurons:L");
    sub->add_option("--csv", o->csv, "paired patching: also write the table as CSV");
    sub->add_flag("-f,--force", o->force, "replace an existing --csv file");
    sub->add_flag("--per-token", o->per_token, "JSON with the per-token bits of every run");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->callback([&g, o] {
      CCC_CHECK(!o->run.file.empty(), "patch: no input (give FILE or --clean FILE)");
      g.init();
      experiments::run_patch(*o);
    });
  }
  {
    auto o = std::make_shared<experiments::ExperimentCmdOptions>();
    auto* sub = app.add_subcommand("experiment",
                                   "run an experiment of the Circuit Competition Conjecture (competition, copy-vs-recall, icl, scaling, emergence, finetune) into a directory");
    sub->add_option("name", o->name, std::string("the experiment: ") + experiments::experiment_names())->required();
    sub->add_option("file", o->file, "input text (default: the head of every corpus's held-out split)");
    add_model_options(sub, o->runs, &o->tokenizer,
                      "model directory (default: the embedded default); emergence: a training run directory with checkpoints/ "
                      "(repeatable, one series each; default data/models/ccc-attn2)");
    sub->add_option("-o,--out", o->out, "output directory (result.json, section.md, CSVs, plots)")->required();
    sub->add_flag("--quick", o->quick, "tiny sizes (400 bytes per corpus, 10 null draws): what the tests run, same schema");
    sub->add_option("--seed", o->seed, "seed of the nulls, pairs and bootstraps (default 0)");
    sub->add_option("--mode", o->mode, "ablation of the candidates: mean (default), zero, or resample (copy-vs-recall)")
        ->check(CLI::IsMember({"mean", "zero", "resample"}));
    sub->add_option("--circuit", o->circuit, "more candidates: components (1.2,mlp0) or a JSON file {\"components\": [...]}");
    sub->add_option("--streams", o->streams, "streams as in ccc compress (0 = automatic)");
    sub->add_option("--corpora", o->corpora_dir, "corpus directory of the default input");
    sub->add_option("--models", o->models, "scaling, emergence: the family, comma-separated model directories (default: the shipped "
                    "ccc-byte-xs, -s, -m, -l; emergence: none = no size series)")->delimiter(',');
    sub->add_option("--positions", o->positions, "copy-vs-recall: positions N (default 64; quick 16); icl: windows (default 64; quick 16); emergence: probe sequences (default 32; quick 8)")->check(CLI::Range(2, 1 << 16));
    sub->add_option("--repeats", o->repeats, "copy-vs-recall: planted copies k, comma-separated (default 0,1,2,4,8; quick 0,1,2,4)")
        ->delimiter(',')->check(CLI::Range(0, 1 << 12));
    sub->add_option("--top", o->top, "copy-vs-recall: components per side the interventions remove (default 3)")->check(CLI::Range(1, 1 << 12));
    sub->add_option("--null-draws", o->null_draws, "null draws: copy-vs-recall's random component sets (default 100; quick 20), icl's random head sets "
                    "(20; quick 5), scaling's exchangeable-models draws (200; quick 50), emergence's smooth-null draws (200; quick 50), "
                    "finetune's permuted-domain draws (1000; quick 200)")
        ->check(CLI::Range(1, 1 << 20));
    sub->add_option("--corpus", o->corpus, "finetune: the target corpus (default llamacpp-src, code)");
    sub->add_option("--params", o->params, "finetune: a parameter subset (all, attn, mlp, layers:L, globs; repeatable; default all, attn, "
                    "mlp and the middle layer; quick all, mlp)")->allow_extra_args(false);
    sub->add_option("--steps", o->steps, "finetune: snapshot step counts of each schedule, comma-separated (default 50,100,200; quick 4,8,12)")
        ->delimiter(',')->check(CLI::Range(1, 1 << 24));
    sub->add_option("--eval-bytes", o->eval_bytes, "finetune: held-out bytes per corpus (default 2048; quick 256)")->check(CLI::Range(64, 1 << 24));
    sub->add_option("--span", o->span, "copy-vs-recall: bytes S of the query span (default 24); emergence: bytes of each probe string (default 50)")->check(CLI::Range(2, 1 << 12));
    sub->add_option("--filler", o->filler, "copy-vs-recall: filler bytes after each planted copy (default 16)")->check(CLI::Range(0, 1 << 12));
    sub->add_option("--min-p", o->min_p, "copy-vs-recall: the recalled byte's probability at k = 0 (default 0.9)")->check(CLI::Range(0.0, 1.0));
    sub->add_flag("-f,--force", o->force, "replace an existing output directory");
    sub->add_flag_callback("-q,--quiet", [o] { o->progress = false; }, "no progress line");
    sub->callback([&g, o] {
      g.init();
      o->command = g.command;
      if (o->name != "emergence") {  // one model: -m given once
        if (o->runs.size() == 1) o->model = o->runs.front(), o->runs.clear();
      }
      experiments::run_experiment(*o);
    });
  }
  {
    auto o = std::make_shared<experiments::StudyCmdOptions>();
    auto* sub = app.add_subcommand("study", "every experiment on the default model and more, then the report (DIR/report/report.html)");
    sub->add_option("-o,--out", o->out, "the study directory (one directory per experiment and model, and report/)")->required();
    sub->add_flag("--quick", o->quick, "every experiment in its quick size (a few minutes in all)");
    sub->add_flag("--default-only", o->default_only, "only the default model (scaling and emergence, which need the family and checkpoint series, are left out)");
    sub->add_option("--experiments", o->experiments, "a subset, comma-separated: copy-vs-recall, competition, icl, scaling, emergence, finetune")
        ->delimiter(',');
    sub->add_option("--corpora", o->corpora_dir, "corpus directory of the held-out inputs");
    sub->add_option("--seed", o->seed, "seed of every experiment (default 0)");
    sub->add_flag("-f,--force", o->force, "write into an existing study directory");
    sub->add_flag_callback("-q,--quiet", [o] { o->progress = false; }, "no progress");
    sub->callback([&g, o] {
      g.init();
      o->command = g.command;
      experiments::run_study(*o);
    });
  }
  {
    auto o = std::make_shared<experiments::ReportCmdOptions>();
    auto* sub = app.add_subcommand("report", "make experiment result directories into report.md and a self-contained report.html");
    sub->add_option("dirs", o->dirs, "output directories of ccc experiment (or ccc study)")->required();
    sub->add_option("-o,--out", o->out, "the report directory")->required();
    sub->add_flag("-f,--force", o->force, "replace an existing report directory");
    sub->callback([o] { experiments::run_report(*o); });
  }
  {
    auto o = std::make_shared<experiments::DiscoverCmdOptions>();
    auto* sub = app.add_subcommand("discover", "ACDC-style circuit discovery on bits: prune heads and MLPs that cost < tau");
    run_options(sub, o->run);
    sub->add_option("--threshold", o->threshold, "tau: remove a component whose removal costs less than this many bits per byte (default 0.01)");
    sub->add_option("--method", o->method,
                    "acdc: one exact scoring per candidate, removals accumulate (default); attribution: one "
                    "second-order attribution pass removes every candidate estimated under tau at once")
        ->check(CLI::IsMember({"acdc", "attribution"}));
    sub->add_flag("--edges", o->edges,
                  "also price every edge between the circuit's components and to the logits by path patching "
                  "(each alone, in the full model); kept when it costs >= tau");
    sub->add_option("-o,--out", o->out, "circuit JSON ({\"components\": [...]}, usable as ccc ablate -c FILE)");
    sub->add_flag("-f,--force", o->force, "replace an existing -o file");
    sub->add_flag("--json", o->json, "print one JSON object");
    sub->callback([&g, o] { g.init(); experiments::run_discover(*o); });
  }
}

}  // namespace ccc::cli
