// `ccc train`, `ccc finetune`, `ccc eval`.

#include <memory>

#include "experiments/cli/cli.h"
#include "experiments/support/common.h"
#include "experiments/commands/train_cmd.h"

namespace ccc::cli {

void add_train_commands(CLI::App& app, Globals& g) {
  {
    auto o = std::make_shared<experiments::TrainCmdOptions>();
    auto* sub = app.add_subcommand("train", "train a byte-level model from a config (data/configs/*.json)");
    sub->add_option("-c,--config", o->config, "training config JSON")->required();
    sub->add_option("-o,--out", o->out, "output model directory")->required();
    sub->add_option("--corpora", o->corpora_dir, "directory of <name>.txt corpora (default: ../shared or .cache)");
    sub->add_flag("--resume", o->resume, "continue the run saved in OUT/resume");
    sub->add_flag("--force", o->force, "start over, replacing OUT");
    sub->add_option("--max-memory", o->max_memory, "bytes the run may use (default: the memory available; the run's estimate is checked first)");
    sub->add_option("--max-steps", o->max_steps, "stop at this step (resume later)");
    sub->add_option("--init", o->init,
                    "start from this model's weights instead of a random init (same model config; a staged recipe's "
                    "next stage; recorded in the model card)");
    sub->callback([&g, o] {
      g.init();
      o->command = g.command;
      experiments::run_train(*o);
    });
  }
  {
    auto o = std::make_shared<experiments::FinetuneCmdOptions>();
    auto* sub = app.add_subcommand("finetune", "continue training on one corpus; report the trade-off in bits");
    add_model_options(sub, o->model, nullptr, "ccc model directory")->required();
    sub->add_option("--corpus", o->corpus, "target corpus name")->required();
    sub->add_option("-o,--out", o->out, "output model directory")->required();
    sub->add_option("--params", o->params, "all | attn | mlp | layers:0,1 | comma-separated globs");
    sub->add_option("--steps", o->steps, "optimizer steps")->check(CLI::Range(1, 1 << 30));
    sub->add_option("--lr", o->lr, "peak learning rate (default 3e-4; warmup 10% of the steps, cosine to lr/10)")->check(CLI::PositiveNumber);
    sub->add_option("--eval-bytes", o->eval_bytes,
                    "held-out bytes per corpus scored before and after (default 8192; 0 = the whole held-out split)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
    sub->add_option("--curve-points", o->curve_points, "validation evaluations of the target during training (default 5)")
        ->check(CLI::Range(0, 1 << 20));
    sub->add_flag("-q,--quiet", o->quiet, "no progress lines");
    sub->add_option("--batch", o->batch_size, "sequences per step")->check(CLI::Range(1, 1 << 16));
    sub->add_option("--seq-len", o->seq_len, "bytes per sequence (0 = the model's n_ctx)")->check(CLI::Range(0, 1 << 24));
    sub->add_option("--seed", o->seed, "seed of the data order");
    sub->add_option("--reference", o->references, "reference corpora (default: all present)");
    sub->add_option("--corpora", o->corpora_dir, "corpus directory");
    sub->add_flag("--force", o->force, "replace an existing OUT");
    sub->add_option("--max-memory", o->max_memory, "bytes the run may use (default: the memory available; the run's estimate is checked first)");
    sub->add_option("--save-every", o->save_every, "keep OUT/checkpoints/step-N every N steps (default 0: none)")->check(CLI::Range(0, 1 << 30));
    sub->add_flag("--circuits", o->circuits, "also the per-circuit table: Δbits of mean-ablating each head and MLP on each corpus's "
                  "held-out head (at most 4096 bytes), before and after, with the shift's CI (OUT/circuits.csv)");
    sub->callback([&g, o] {
      g.init();
      o->command = g.command;
      experiments::run_finetune(*o);
    });
  }
  {
    struct EvalArgs {
      std::string model, corpora_dir, tokenizer;
      std::vector<std::string> corpora;
      bool json = false, quiet = false;
    };
    auto o = std::make_shared<EvalArgs>();
    auto* sub = app.add_subcommand("eval", "held-out bits per byte of a ccc model on each corpus");
    add_model_options(sub, o->model, &o->tokenizer, "ccc model directory (default: data/models/default)");
    sub->add_option("corpora", o->corpora, "corpus names (default: all present)");
    sub->add_option("--corpora", o->corpora_dir, "corpus directory (default ../shared or .cache)");
    sub->add_flag("--json", o->json, "print JSON");
    sub->add_flag("-q,--quiet", o->quiet, "no progress line (drawn only on a terminal anyway)");
    sub->callback([&g, o] {
      g.init();
      experiments::run_eval(o->model.empty() ? experiments::default_model_path() : o->model, o->corpora_dir,
                            o->corpora, o->json, o->tokenizer, o->quiet);
    });
  }
}

}  // namespace ccc::cli
