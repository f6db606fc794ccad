// `ccc compress`, `ccc decompress`.

#include <memory>

#include "experiments/cli/cli.h"
#include "experiments/commands/compress_cmd.h"

namespace ccc::cli {

namespace {
void add_codec_args(CLI::App* sub, experiments::CompressCmdOptions& o, bool many = false) {
  add_model_options(sub, o.model, &o.tokenizer, kModelHelp, /*short_t=*/false);
  if (many) sub->add_option("files", o.inputs, "input files ('-' = standard input)")->required();
  else sub->add_option("in", o.in, "input file ('-' = stdin)")->required();
  sub->add_option("-o,--out", o.out, "output file ('-' = stdout)");
  sub->add_flag("-f,--force", o.force, "overwrite an existing output");
  sub->add_flag("-q,--quiet", o.quiet, "no progress or summary");
  sub->add_option("--workers", o.threads, "worker threads (never changes the output; 0 = cores)")->check(CLI::Range(0, 1 << 30));
  if (many) {
    sub->add_flag("-c,--stdout", o.to_stdout, "write to standard output");
    sub->add_flag("-k,--keep", "keep the input (always: ccc never deletes its input; accepted for gzip/zstd habits)");
    sub->add_flag("-t,--test", o.test, "decompress in memory and verify the checksum; write nothing");
    sub->add_flag("-l,--list", o.list, "print the container's header: sizes, ratio, model, streams, window");
  }
}
// compress / decompress with an ablated model (both sides need the same options)
void add_ablation_args(CLI::App* sub, experiments::CompressCmdOptions& o) {
  sub->add_option("--ablate", o.ablate,
                  "code with these components ablated (L.H, attnL, mlpL, nL.N; see ccc ablate); codes model-only, as --pure, "
                  "so the size difference to --pure is the ablation's cost");
  sub->add_option("--mode", o.ablate_mode, "ablation mode: zero (default), mean or resample");
  sub->add_option("--reference", o.reference, "reference text of mean / resample ablations (required for them)");
  sub->add_option("--seed", o.seed, "seed of resample ablations (default 0)");
  sub->add_option("--sae", o.sae, "code with this dictionary (ccc sae train) spliced in at its hook, model-only as --pure: the size difference to --pure is its cost in bytes");
}
}  // namespace

void add_compress_commands(CLI::App& app, Globals& g) {
  {
    auto o = std::make_shared<experiments::CompressCmdOptions>();
    auto* sub = app.add_subcommand("compress", "lossless compression with the model (arithmetic coding)");
    add_codec_args(sub, *o, true);
    sub->add_flag("-d,--decompress", o->decompress, "decompress instead (as ccc decompress)");
    sub->add_flag("--pure", o->pure,
                  "model-only coding, the measurement: the payload is the model's bits (ccc bits) up to rounding, with no floor; the default for byte-level "
                  "models is context mixing around the model (recorded in the header; decompress needs no flag)");
    sub->add_flag("--explain", o->explain,
                  "also report lm_bits (the model alone), cm_bits (the context models alone) and mix_bits (coded) "
                  "per byte; runs the context models a second time without the model");
    sub->add_option("--streams", o->streams, "independent streams B (default: one per KiB, max 256)")->check(CLI::Range(0, 1 << 30));
    sub->add_option("--window", o->window, "context window W (default: n_ctx/2 rolling, n_ctx strided)")->check(CLI::Range(0, 1 << 30));
    sub->add_flag("--strided", o->strided, "strided windows that re-encode context (default for learned positions)");
    sub->add_option("--frame-bytes", o->frame_bytes,
                    "input bytes per frame: the input is read, coded and written one frame at a time (memory is bounded "
                    "by one frame; streams restart at frame boundaries)")
        ->check(CLI::Range(4096, 64 << 20));
    sub->add_option("--groups", o->groups, "stream groups, each coded on its own thread (default automatic: 8, or more so that each group's K/V caches stay within 3 MiB; the same bytes on every machine)")->check(CLI::Range(0, 1 << 30));
    sub->add_option("--dump", o->dump, "also capture activations of --hooks into this HDF5 file (see ccc dump)");
    sub->add_option("--hooks", o->hooks, "hook names or globs to capture with --dump (repeatable)");
    sub->add_option("--dtype", o->dump_dtype, "activation dtype of the dump: f16 (default) or f32");
    sub->add_option("--compression", o->dump_compression, "dump compression: none (default), gzip, fast");
    sub->add_flag("--dump-force", o->dump_force, "replace an existing dump file");
    add_ablation_args(sub, *o);
    sub->callback([&g, o] { g.init(); o->command = g.command; experiments::run_codec_files(*o, o->decompress); });
  }
  {
    auto o = std::make_shared<experiments::CompressCmdOptions>();
    auto* sub = app.add_subcommand("dump", "capture activations to HDF5 during the compressor's encoding run");
    add_model_options(sub, o->model, &o->tokenizer);
    sub->add_option("in", o->in, "input file ('-' = stdin)")->required();
    sub->add_option("-o,--out", o->dump, "output .h5 file")->required();
    sub->add_option("--hooks", o->hooks, "hook names or globs (repeatable; none = tokens and bits only)");
    sub->add_option("--streams", o->streams, "independent streams B, as for compress")->check(CLI::Range(0, 1 << 30));
    sub->add_option("--window", o->window, "context window W, as for compress")->check(CLI::Range(0, 1 << 30));
    sub->add_flag("--strided", o->strided, "strided window policy, as for compress");
    sub->add_option("--groups", o->groups, "stream groups, as for compress");
    sub->add_option("--workers", o->threads, "worker threads (never changes the dump)");
    sub->add_option("--dtype", o->dump_dtype, "activation dtype: f16 (default) or f32");
    sub->add_option("--compression", o->dump_compression, "none (default), gzip (deflate 4), fast (deflate 1)");
    sub->add_flag("-f,--force", o->force, "replace an existing output");
    sub->add_flag("-q,--quiet", o->quiet, "no progress or summary");
    sub->callback([&g, o] { g.init(); o->command = g.command; experiments::run_dump(*o); });
  }
  {
    auto o = std::make_shared<experiments::CompressCmdOptions>();
    auto* sub = app.add_subcommand("decompress", "restore a .ccc file bit-exactly");
    add_codec_args(sub, *o, true);
    add_ablation_args(sub, *o);
    sub->callback([&g, o] { g.init(); experiments::run_codec_files(*o, true); });
  }
}

}  // namespace ccc::cli
