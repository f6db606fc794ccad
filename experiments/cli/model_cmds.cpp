// `ccc info`, `ccc hooks`, `ccc generate`, `ccc bits`, `ccc init`.

#include <memory>

#include "experiments/cli/cli.h"
#include "experiments/commands/model_cmd.h"

namespace ccc::cli {

void add_model_commands(CLI::App& app, Globals& g) {
  {
    auto a = std::make_shared<experiments::ModelArgs>();
    auto json = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand("info", "architecture, parameters, context, vocab, fingerprint");
    add_model_options(sub, a->model, &a->tokenizer);
    sub->add_flag("--json", *json, "print one JSON object");
    sub->callback([&g, a, json] { g.init(); experiments::run_info(*a, *json); });
  }
  {
    auto a = std::make_shared<experiments::ModelArgs>();
    auto* sub = app.add_subcommand("hooks", "list every hook point with its shape");
    add_model_options(sub, a->model, &a->tokenizer);
    sub->callback([&g, a] { g.init(); experiments::run_hooks(*a); });
  }
  {
    auto a = std::make_shared<experiments::ModelArgs>();
    auto o = std::make_shared<experiments::GenerateArgs>();
    auto* sub = app.add_subcommand("generate", "continue a prompt (greedy at temperature 0)");
    add_model_options(sub, a->model, &a->tokenizer);
    sub->add_option("-p,--prompt", o->prompt, "prompt text (default: BOS only)");
    sub->add_option("-n", o->n, "new tokens")->check(CLI::NonNegativeNumber);
    sub->add_option("--temperature", o->temperature, "0 = greedy")->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", o->seed, "sampling seed");
    sub->callback([&g, a, o] { g.init(); experiments::run_generate(*a, *o); });
  }
  {
    auto a = std::make_shared<experiments::ModelArgs>();
    auto o = std::make_shared<experiments::BitsArgs>();
    auto* sub = app.add_subcommand("bits", "score FILE: bits per token and per byte");
    add_model_options(sub, a->model, &a->tokenizer);
    sub->add_option("file", o->file, "input file ('-' = stdin)")->required();
    sub->add_flag("--json", o->json, "print one JSON object with per-token bits");
    sub->add_option("--window", o->window, "window length (default n_ctx)");
    sub->add_option("--stride", o->stride, "window stride (default window/2)");
    sub->add_option("--streams", o->streams,
                    "score as the compressor does: B segments (0 = automatic, as in every command), each with its own "
                    "BOS, the compressor's window policy "
                    "(--window, --strided as for compress; prints total_bits and bits_per_byte; --json adds per-stream "
                    "bits)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    sub->add_flag("--strided", o->strided, "with --streams: the strided window policy");
    add_position_options(sub, o->positions);
    sub->add_flag("-q,--quiet", o->quiet, "no progress line (it is drawn only on a terminal anyway)");
    sub->callback([&g, a, o] { g.init(); experiments::run_bits(*a, *o); });
  }
  {
    auto o = std::make_shared<experiments::InitArgs>();
    auto* sub = app.add_subcommand("init", "write a randomly initialised ccc model from a config");
    sub->add_option("-c,--config", o->config, "ccc config.json")->required();
    sub->add_option("-o,--out", o->out, "output model directory")->required();
    sub->add_option("--seed", o->seed, "init seed");
    sub->add_flag("--force", o->force, "replace an existing output");
    sub->callback([&g, o] { g.init(); experiments::run_init(*o); });
  }
}

}  // namespace ccc::cli
