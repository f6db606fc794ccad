// `ccc bench forward | train | quality | compress | hooks | decode | dump | scale-out | sweep | units | memory | startup`.

#include <iostream>
#include <memory>

#include "experiments/bench/bench_compress.h"
#include "experiments/bench/bench_decode.h"
#include "experiments/bench/bench_dump.h"
#include "experiments/bench/bench_scale.h"
#include "experiments/bench/bench_forward.h"
#include "experiments/bench/bench_hooks.h"
#include "experiments/bench/bench_memory.h"
#include "experiments/bench/bench_quality.h"
#include "experiments/bench/bench_startup.h"
#include "experiments/bench/bench_sae.h"
#include "experiments/bench/bench_sweep.h"
#include "experiments/bench/bench_train.h"
#include "experiments/bench/bench_units.h"
#include "experiments/cli/cli.h"
#include "experiments/support/common.h"

namespace ccc::cli {

void add_bench_commands(CLI::App& app, Globals& g) {
  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  {
    auto o = std::make_shared<experiments::BenchForwardOptions>();
    auto* sub = bench->add_subcommand("forward", "prefill throughput and hook overhead (GPT-2-small shape)");
    sub->add_option("--batch", o->batch, "sequences per forward")->check(CLI::Range(1, 1 << 16));
    sub->add_option("--pos", o->pos, "tokens per sequence")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--layers", o->n_layers, "transformer blocks of the GPT-2-small-shaped model")->check(CLI::Range(1, 1024));
    sub->add_option("--reps", o->reps, "timed repetitions (the best is reported)")->check(CLI::Range(1, 1 << 20));
    sub->callback([&g, o] { g.init(); experiments::bench_forward(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchTrainOptions>();
    auto* sub = bench->add_subcommand("train", "training tokens/s and GFLOP/s next to the matmul roofline");
    sub->add_option("-c,--config", o->config, "training config")->required();
    sub->add_option("--steps", o->steps, "timed training steps")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--corpora", o->corpora_dir, "corpus directory (default ../shared or .cache)");
    sub->callback([&g, o] { g.init(); experiments::bench_train(*o); });
  }
  {
    struct QualityArgs {
      std::vector<std::string> models, flagged;
      std::string corpora_dir, tokenizer;
    };
    auto o = std::make_shared<QualityArgs>();
    auto* sub = bench->add_subcommand("quality", "held-out bpb of models next to bzip2 -9 and xz -9e");
    sub->add_option("models", o->models, "model directories");
    add_model_options(sub, o->flagged, &o->tokenizer, "a model (repeatable; adds to the positional ones)");
    sub->add_option("--corpora", o->corpora_dir, "corpus directory (default ../shared or .cache)");
    sub->callback([&g, o] {
      g.init();
      o->models.insert(o->models.end(), o->flagged.begin(), o->flagged.end());
      if (o->models.empty()) o->models.push_back(experiments::default_model_path());
      experiments::bench_quality(o->models, o->corpora_dir, o->tokenizer);
    });
  }
  {
    auto o = std::make_shared<experiments::BenchCompressOptions>();
    auto* sub = bench->add_subcommand(
        "compress", "ccc models (model-only coding, --pure) vs gzip, bzip2, xz, zstd, brotli, zpaq; --suite diverse: the default compressor on files of every kind");
    sub->add_option("files", o->files, "files (default: held-out part of each corpus)");
    add_model_options(sub, o->models, &o->tokenizer, "a model (repeatable; default: the shipped family)");
    sub->add_option("--out-dir", o->out_dir, "where CSV and plots go");
    sub->add_option("--corpora", o->corpora_dir);
    sub->add_option("--suite", o->suite,
                    "diverse: the file suite of data/bench_suite.sh (prose LF/CRLF, Markdown, HTML, XML, JSON, man, C, C++, "
                    "Python, log, executable, library, PNG, gzip, random), ccc and ccc --pure with one model (-m)");
    sub->add_option("--suite-dir", o->suite_dir, "where the suite is built (default .cache/diverse)");
    sub->add_option("--window", o->windows,
                    "rolling window W for every model (repeatable: one row per window; 0 = automatic, the default)")
        ->allow_extra_args(false)
        ->check(CLI::NonNegativeNumber);
    sub->callback([&g, o] { g.init(); experiments::bench_compress(*o); });
  }
  {
    auto o = std::make_shared<experiments::BenchHooksOptions>();
    auto* sub = bench->add_subcommand("hooks", "decode-step hook overhead: none / one site / every site / sweep editor");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: data/models/default)");
    sub->add_option("--rows", o->rows, "batch rows (the compressor's group shape)");
    sub->add_option("--window", o->window, "rolling window W (0 = n_ctx/2)");
    sub->add_option("--steps", o->steps, "timed decode steps per repetition");
    sub->add_option("--reps", o->reps, "interleaved repetitions (best is reported)");
    sub->callback([&g, o] { g.init(); experiments::bench_hooks(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchDecodeOptions>();
    auto* sub = bench->add_subcommand("decode", "single-token decoding tokens/s (B=1 and batched) next to the roofline");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: a random stories15M-shaped llama2.c checkpoint)");
    sub->add_option("-n,--tokens", o->tokens, "tokens per timed run");
    sub->add_option("--batch", o->batch, "rows of the batched run");
    sub->add_option("--reps", o->reps, "interleaved repetitions (best is reported)");
    sub->add_option("--runc", o->runc, "llama2.c run binary to time on the same checkpoint (baseline)");
    sub->callback([&g, o] { g.init(); experiments::bench_decode(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchDumpOptions>();
    auto* sub = bench->add_subcommand("dump", "activation capture cost: compress vs compress + dump, compression, RSS");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: data/models/default)");
    sub->add_option("--file", o->file, "timing input (default: the held-out corpora)");
    sub->add_option("--bytes", o->bytes, "timing input bytes (default 32768)");
    sub->add_option("--compression-bytes", o->compression_bytes, "input bytes of the compression comparison (default 8192)");
    sub->add_option("--rss-model", o->rss_model, "model of the 1 MB / 10 MB RSS runs (default ccc-byte-xs)");
    sub->add_flag_callback("--no-rss", [o] { o->rss = false; }, "skip the RSS runs");
    sub->add_option("--corpora", o->corpora_dir);
    sub->callback([&g, o] { g.init(); experiments::bench_dump(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchScaleOptions>();
    auto* sub = bench->add_subcommand("scale-out", "MPI: head sweep and dump, one process vs mpirun -n R, projected efficiency");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: data/models/default)");
    sub->add_option("--file", o->file, "input (default: the held-out corpora)");
    sub->add_option("--bytes", o->bytes, "input bytes (default 32768)");
    sub->add_option("--streams", o->streams, "streams of the sweep and the dump (default 16)");
    sub->add_option("--ranks", o->ranks, "ranks of the mpirun runs (default 2)");
    sub->add_option("--alpha-us", o->alpha_us, "projection: message latency in microseconds (default 5)");
    sub->add_option("--beta-gbs", o->beta_gbs, "projection: link bandwidth in GB/s (default 10)");
    sub->add_option("--corpora", o->corpora_dir);
    sub->callback([&g, o] { g.init(); experiments::bench_scale(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchSweepOptions>();
    auto* sub = bench->add_subcommand("sweep", "all-heads zero sweep: batched vs one run per head, with the max difference");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: data/models/default)");
    sub->add_option("--file", o->file, "input (default: 4 KB of each held-out corpus)");
    sub->add_option("--bytes", o->bytes, "input bytes (default 20000)");
    sub->add_option("--corpora", o->corpora_dir);
    sub->callback([&g, o] { g.init(); experiments::bench_sweep(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchUnitsOptions>();
    auto* sub = bench->add_subcommand("units", "ccc units on a dump of every MLP hook_post: time and peak RSS");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: data/models/default)");
    sub->add_option("--dump-mb", o->dump_mb, "dump size in MB (default 50)");
    sub->callback([&g, o] { g.init(); experiments::bench_units(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchSaeOptions>();
    auto* sub = bench->add_subcommand("sae", "sparse-dictionary training rows/s and GFLOP/s next to the encoder's matmul roofline");
    add_model_options(sub, o->model, &o->tokenizer, "model of the made dump (default: data/models/default)");
    sub->add_option("--dump", o->dump, "an existing dump (default: one made of the model's last mlp.hook_post on held-out text)");
    sub->add_option("--hook", o->hook, "the dump's hook (with --dump)");
    sub->add_option("--rows", o->rows, "rows of the made dump (default 60000)")->check(CLI::Range(int64_t{1000}, int64_t{1} << 30));
    sub->add_option("--expansion", o->expansion, "latents per input dimension (default 8)")->check(CLI::Range(1, 1 << 10));
    sub->add_option("--k", o->k, "active latents per row (default 32)")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--batch", o->batch, "rows per step (default 4096)")->check(CLI::Range(1, 1 << 24));
    sub->add_option("--steps", o->steps, "timed steps (default 12)")->check(CLI::Range(1, 1 << 20));
    sub->callback([&g, o] { g.init(); experiments::bench_sae(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchMemoryOptions>();
    auto* sub = bench->add_subcommand("memory", "peak RSS of compress / decompress / bits as the input grows (streaming)");
    add_model_options(sub, o->model, &o->tokenizer, "model (default: a 5K-parameter random byte model: the codec's own memory)");
    sub->add_option("--sizes", o->sizes_mb, "input sizes in MB; the first is the baseline")->delimiter(',');
    sub->add_option("--frame-bytes", o->frame_bytes, "compress --frame-bytes")->check(CLI::Range(4096, 64 << 20));
    sub->add_option("--tmp-dir", o->tmp_dir, "where the inputs are written (default: the system temp dir)");
    sub->callback([&g, o] { g.init(); experiments::bench_memory(*o, std::cout); });
  }
  {
    auto o = std::make_shared<experiments::BenchStartupOptions>();
    auto* sub = bench->add_subcommand("startup", "start-up time of ccc --help / --version / info vs ccc-core started directly");
    sub->add_option("--runs", o->runs, "runs of each command (median and fastest reported)")->check(CLI::Range(1, 1000));
    sub->callback([&g, o] { g.init(); experiments::bench_startup(*o, std::cout); });
  }
}

}  // namespace ccc::cli
