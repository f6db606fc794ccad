// The ccc command line. Only this file turns errors into exit codes.

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "experiments/bench_forward.h"
#include "experiments/train_cmd.h"
#include "experiments/compress_cmd.h"
#include "compress/lm_codec.h"
#include "model/error.h"
#include "model/loader.h"
#include "model/runtime.h"
#include "model/score.h"
#include "model/util.h"

namespace {

using namespace ccc;

std::string read_input(const std::string& path) {
  if (path == "-") {
    std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return s;
  }
  return read_file(path);
}

void cmd_info(const std::string& model_path, const std::string& tok_path, bool json) {
  auto m = model::load_model(model_path, tok_path);
  const auto& c = m.config;
  nlohmann::json j = c.to_json();
  j.erase("model_type");
  j["source"] = m.source;
  j["format"] = m.format;
  j["n_params"] = c.n_params();
  j["tokenizer"] = m.tokenizer->kind();
  j["tokenizer_vocab"] = m.tokenizer->vocab_size();
  j["fingerprint"] = m.fingerprint;
  if (json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model        %s (%s)\n", m.source.c_str(), m.format.c_str());
  std::printf("architecture %s: %lld layers, d_model %lld, %lld heads (%lld kv) x d_head %lld, d_mlp %lld%s\n",
              c.arch.c_str(), (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.n_kv_heads,
              (long long)c.d_head, (long long)c.d_mlp, c.attn_only ? " (attention only)" : "");
  std::printf("components   norm %s, act %s%s, positions %s", model::to_string(c.norm).c_str(), model::to_string(c.act).c_str(),
              c.gated_mlp ? " (gated)" : "", model::to_string(c.pos).c_str());
  if (c.pos == model::PosKind::kRotary) std::printf(" (rotary_dim %lld, theta %g)", (long long)c.rotary_dim, c.rope_theta);
  std::printf("%s%s\n", c.parallel_attn ? ", parallel attn+mlp" : "", c.tied_embed ? ", tied unembedding" : "");
  std::printf("parameters   %lld\n", (long long)c.n_params());
  std::printf("context      %lld\n", (long long)c.n_ctx);
  std::printf("vocab        %lld in, %lld out; tokenizer %s (%lld tokens), bos %lld\n", (long long)c.d_vocab,
              (long long)c.d_vocab_out, m.tokenizer->kind().c_str(), (long long)m.tokenizer->vocab_size(), (long long)c.bos_id);
  std::printf("fingerprint  %s\n", m.fingerprint.c_str());
}

void cmd_hooks(const std::string& model_path, const std::string& tok_path) {
  auto m = model::load_model(model_path, tok_path);
  for (const auto& [name, shape] : m.model->hook_shapes()) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i];
    s += "]";
    const bool opt_in = name.find("hook_result") != std::string::npos;
    std::printf("%-36s %s%s\n", name.c_str(), s.c_str(), opt_in ? "  (opt-in: exact name only)" : "");
  }
}

void cmd_generate(const std::string& model_path, const std::string& tok_path, const std::string& prompt, int64_t n,
                  double temperature, uint64_t seed) {
  auto m = model::load_model(model_path, tok_path);
  std::vector<int64_t> ids{m.config.bos_id};
  auto enc = m.tokenizer->encode(prompt);
  ids.insert(ids.end(), enc.begin(), enc.end());
  model::GenerateOptions opt;
  opt.max_new_tokens = n;
  opt.temperature = temperature;
  opt.seed = seed;
  opt.stop_id = m.config.bos_id == m.config.eos_id ? m.config.eos_id : m.config.bos_id;
  auto out = model::generate(m.model, ids, opt);
  std::vector<int64_t> all(enc);
  all.insert(all.end(), out.begin(), out.end());
  std::cout << m.tokenizer->decode(all) << std::endl;
}

void cmd_bits(const std::string& model_path, const std::string& tok_path, const std::string& file, bool json,
              int64_t window, int64_t stride) {
  auto m = model::load_model(model_path, tok_path);
  const std::string text = read_input(file);
  std::vector<int64_t> tokens{m.config.bos_id};
  auto enc = m.tokenizer->encode(text);
  tokens.insert(tokens.end(), enc.begin(), enc.end());
  model::WindowPolicy pol{window, stride};
  auto bits = model::score_bits(m.model, tokens, pol);
  double total = 0;
  for (double b : bits) total += b;
  const int64_t W = window > 0 ? window : m.config.n_ctx;
  const int64_t S = stride > 0 ? stride : std::max<int64_t>(1, W / 2);
  const double bpb = text.empty() ? 0.0 : total / static_cast<double>(text.size());
  if (json) {
    nlohmann::json j;
    j["model"] = m.source;
    j["fingerprint"] = m.fingerprint;
    j["file"] = file;
    j["tokens"] = tokens;
    j["bits"] = bits;
    j["total_bits"] = total;
    j["n_bytes"] = text.size();
    j["n_tokens"] = tokens.size();
    j["bits_per_byte"] = bpb;
    j["bits_per_token"] = bits.empty() ? 0.0 : total / bits.size();
    j["window"] = {{"size", W}, {"stride", S}};
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("file           %s\n", file.c_str());
  std::printf("model          %s\n", m.source.c_str());
  std::printf("n_bytes        %zu\n", text.size());
  std::printf("n_tokens       %zu (BOS included)\n", tokens.size());
  std::printf("total_bits     %.3f\n", total);
  std::printf("bits_per_byte  %.4f\n", bpb);
  std::printf("bits_per_token %.4f\n", bits.empty() ? 0.0 : total / bits.size());
  std::printf("window         %lld tokens, stride %lld\n", (long long)W, (long long)S);
}

void cmd_init(const std::string& config_path, const std::string& out_dir, uint64_t seed, bool force) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(config_path, ": not valid JSON: ", e.what());
  }
  model::ModelConfig c;
  try {
    c = model::ModelConfig::from_json(j);
  } catch (const Error& e) {
    CCC_FAIL(config_path, ": ", e.what());
  }
  std::error_code ec;
  CCC_CHECK(force || !std::filesystem::exists(out_dir, ec), out_dir, " exists (use --force to replace)");
  model::Transformer m(c);
  m->init_weights(seed);
  model::save_model(out_dir, c, m);
  std::printf("wrote %s (%lld parameters, random init, seed %llu)\n", out_dir.c_str(), (long long)c.n_params(),
              (unsigned long long)seed);
}

}  // namespace

int main(int argc, char** argv) {
  // LibTorch's OpenMP workers spin while OpenBLAS's own threads run a GEMM, and OpenBLAS's threads spin
  // (sched_yield) while LibTorch runs elementwise kernels: the two fight over the cores (measured:
  // training 2x slower with OpenMP spinning, ~9% slower with OpenBLAS spinning). libgomp and OpenBLAS read
  // OMP_WAIT_POLICY / OPENBLAS_THREAD_TIMEOUT only at start-up, so when the user has not chosen them,
  // re-execute once with PASSIVE and the shortest OpenBLAS spin (2^4 cycles).
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
  }
  CLI::App app{"ccc: measuring transformer language models in bits"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "intra-op threads (default: all cores)");
  std::string model_path, tok_path;
  auto add_model = [&](CLI::App* sub) {
    sub->add_option("-m,--model", model_path,
                    "model directory (ccc or Hugging Face) or llama2.c .bin (default: data/models/default or $CCC_MODEL)");
    sub->add_option("-t,--tokenizer", tok_path, "tokenizer file or directory (overrides discovery)");
  };

  bool json = false;
  auto* info = app.add_subcommand("info", "architecture, parameters, context, vocab, fingerprint");
  add_model(info);
  info->add_flag("--json", json, "print one JSON object");

  auto* hooks = app.add_subcommand("hooks", "list every hook point with its shape");
  add_model(hooks);

  std::string prompt;
  int64_t n_new = 64;
  double temperature = 0;
  uint64_t seed = 0;
  auto* gen = app.add_subcommand("generate", "continue a prompt (greedy at temperature 0)");
  add_model(gen);
  gen->add_option("-p,--prompt", prompt, "prompt text (default: BOS only)");
  gen->add_option("-n", n_new, "new tokens")->check(CLI::NonNegativeNumber);
  gen->add_option("--temperature", temperature, "0 = greedy")->check(CLI::NonNegativeNumber);
  gen->add_option("--seed", seed, "sampling seed");

  std::string file;
  int64_t window = 0, stride = 0;
  auto* bits = app.add_subcommand("bits", "score FILE: bits per token and per byte");
  add_model(bits);
  bits->add_option("file", file, "input file ('-' = stdin)")->required();
  bits->add_flag("--json", json, "print one JSON object with per-token bits");
  bits->add_option("--window", window, "window length (default n_ctx)");
  bits->add_option("--stride", stride, "window stride (default window/2)");
  int64_t bits_streams = 0;
  bits->add_option("--streams", bits_streams,
                   "score as the compressor does: B segments, each with its own BOS, the compressor's window policy "
                   "(--window, --strided as for compress; prints total_bits only)");
  bool bits_strided = false;
  bits->add_flag("--strided", bits_strided, "with --streams: the strided window policy");

  std::string config_path, out_dir;
  bool force = false;
  auto* init = app.add_subcommand("init", "write a randomly initialised ccc model from a config");
  init->add_option("-c,--config", config_path, "ccc config.json")->required();
  init->add_option("-o,--out", out_dir, "output model directory")->required();
  init->add_option("--seed", seed, "init seed");
  init->add_flag("--force", force, "replace an existing output");

  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  experiments::TrainCmdOptions topt;
  topt.command = command;
  auto* train = app.add_subcommand("train", "train a byte-level model from a config (data/configs/*.json)");
  train->add_option("-c,--config", topt.config, "training config JSON")->required();
  train->add_option("-o,--out", topt.out, "output model directory")->required();
  train->add_option("--corpora", topt.corpora_dir, "directory of <name>.txt corpora (default: ../shared or .cache)");
  train->add_flag("--resume", topt.resume, "continue the run saved in OUT/resume");
  train->add_flag("--force", topt.force, "start over, replacing OUT");
  train->add_option("--max-steps", topt.max_steps, "stop at this step (resume later)");

  experiments::FinetuneCmdOptions fopt;
  fopt.command = command;
  auto* ft = app.add_subcommand("finetune", "continue training on one corpus; report the trade-off in bits");
  ft->add_option("-m,--model", fopt.model, "ccc model directory")->required();
  ft->add_option("--corpus", fopt.corpus, "target corpus name")->required();
  ft->add_option("-o,--out", fopt.out, "output model directory")->required();
  ft->add_option("--params", fopt.params, "all | attn | mlp | layers:0,1 | comma-separated globs");
  ft->add_option("--steps", fopt.steps);
  ft->add_option("--lr", fopt.lr);
  ft->add_option("--batch", fopt.batch_size);
  ft->add_option("--seq-len", fopt.seq_len);
  ft->add_option("--seed", fopt.seed);
  ft->add_option("--reference", fopt.references, "reference corpora (default: all present)");
  ft->add_option("--corpora", fopt.corpora_dir, "corpus directory");
  ft->add_flag("--force", fopt.force, "replace an existing OUT");

  std::vector<std::string> eval_corpora;
  std::string corpora_dir;
  auto* eval = app.add_subcommand("eval", "held-out bits per byte of a ccc model on each corpus");
  eval->add_option("-m,--model", model_path, "ccc model directory (default: data/models/default)");
  eval->add_option("corpora", eval_corpora, "corpus names (default: all present)");
  eval->add_option("--corpora", corpora_dir, "corpus directory");
  eval->add_flag("--json", json, "print JSON");

  experiments::CompressCmdOptions copt;
  auto add_codec = [&](CLI::App* sub) {
    sub->add_option("-m,--model", copt.model, "model (default: data/models/default or $CCC_MODEL)");
    sub->add_option("-t,--tokenizer", copt.tokenizer, "tokenizer override");
    sub->add_option("in", copt.in, "input file ('-' = stdin)")->required();
    sub->add_option("-o,--out", copt.out, "output file ('-' = stdout)");
    sub->add_flag("-f,--force", copt.force, "overwrite an existing output");
    sub->add_flag("-q,--quiet", copt.quiet, "no progress or summary");
    sub->add_option("--workers", copt.threads, "worker threads (never changes the output)");
  };
  auto* comp = app.add_subcommand("compress", "lossless compression with the model (arithmetic coding)");
  add_codec(comp);
  comp->add_option("--streams", copt.streams, "independent streams B (default: one per KiB, max 256)");
  comp->add_option("--window", copt.window, "context window W (default: n_ctx/2 rolling, n_ctx strided)");
  comp->add_flag("--strided", copt.strided, "strided windows that re-encode context (default for learned positions)");
  comp->add_option("--groups", copt.groups, "stream groups coded in parallel (default: cores)");
  auto* decomp = app.add_subcommand("decompress", "restore a .ccc file bit-exactly");
  add_codec(decomp);

  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  experiments::BenchForwardOptions bopt;
  auto* bfwd = bench->add_subcommand("forward", "prefill throughput and hook overhead (GPT-2-small shape)");
  bfwd->add_option("--batch", bopt.batch);
  bfwd->add_option("--pos", bopt.pos);
  bfwd->add_option("--layers", bopt.n_layers);
  bfwd->add_option("--reps", bopt.reps);

  experiments::BenchTrainOptions btopt;
  auto* btrain = bench->add_subcommand("train", "training tokens/s and GFLOP/s next to the matmul roofline");
  btrain->add_option("-c,--config", btopt.config, "training config")->required();
  btrain->add_option("--steps", btopt.steps);
  btrain->add_option("--corpora", btopt.corpora_dir);
  std::vector<std::string> quality_models;
  auto* bquality = bench->add_subcommand("quality", "held-out bpb of models next to bzip2 -9 and xz -9e");
  bquality->add_option("models", quality_models, "model directories")->required();
  bquality->add_option("--corpora", corpora_dir);

  experiments::BenchCompressOptions bcopt;
  auto* bcomp = bench->add_subcommand("compress", "ccc models vs gzip, bzip2, xz, zstd, brotli, zpaq");
  bcomp->add_option("files", bcopt.files, "files (default: held-out part of each corpus)");
  bcomp->add_option("--model", bcopt.models, "models (default: the shipped family)");
  bcomp->add_option("--out-dir", bcopt.out_dir, "where CSV and plots go");
  bcomp->add_option("--corpora", bcopt.corpora_dir);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (model_path.empty()) model_path = experiments::default_model_path();
  try {
    ccc::init_runtime(threads);
    if (*info) cmd_info(model_path, tok_path, json);
    else if (*hooks) cmd_hooks(model_path, tok_path);
    else if (*gen) cmd_generate(model_path, tok_path, prompt, n_new, temperature, seed);
    else if (*bits && bits_streams > 0) {
      auto m = model::load_model(model_path, tok_path);
      const std::string text = read_input(file);
      compress::CodecOptions bopt;
      bopt.streams = bits_streams;
      bopt.window = window;
      bopt.strided = bits_strided;
      const double total = compress::segmented_bits(m, text, bopt);
      std::printf("total_bits %.3f\nbits_per_byte %.4f\nstreams %lld\nwindow %s\n", total,
                  text.empty() ? 0.0 : total / text.size(), (long long)bits_streams,
                  compress::describe_policy(m.config, bopt).c_str());
    } else if (*bits) cmd_bits(model_path, tok_path, file, json, window, stride);
    else if (*init) cmd_init(config_path, out_dir, seed, force);
    else if (*bfwd) experiments::bench_forward(bopt, std::cout);
    else if (*train) experiments::run_train(topt);
    else if (*comp) experiments::run_compress(copt);
    else if (*decomp) experiments::run_decompress(copt);
    else if (*bcomp) experiments::bench_compress(bcopt);
    else if (*ft) experiments::run_finetune(fopt);
    else if (*eval) experiments::run_eval(model_path, corpora_dir, eval_corpora, json);
    else if (*btrain) experiments::bench_train(btopt);
    else if (*bquality) experiments::bench_quality(quality_models, corpora_dir);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
