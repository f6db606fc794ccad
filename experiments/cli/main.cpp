// The ccc command line. Only this file turns errors into exit codes.

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <exception>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

#include <c10/util/Exception.h>

#include "experiments/cli/cli.h"
#include "compress/lm_codec.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/kernels/runtime.h"

void ccc::cli::Globals::init() const {
  const int cores = ccc::available_cores();
  if (threads < 0 || threads > 4 * cores)
    throw ccc::Error("--threads " + std::to_string(threads) + ": expected 0 (all cores) to " + std::to_string(4 * cores) +
                     " (4 x the " + std::to_string(cores) + " cores)");
  // under mpirun the ranks of one host share its cores: 0 means its cores / ranks on this host, or the
  // cores the rank is bound to (mpirun binds each rank to a core by default) when fewer
  const int host = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_rank =
      threads == 0 && ccc::dist::size() > 1 ? std::max(1, std::min(cores, host / ccc::dist::local_size())) : threads;
  ccc::init_runtime(per_rank);
}

const char* const ccc::cli::kModelHelp =
    "model: a ccc or Hugging Face directory or a llama2.c .bin (default: data/models/default or $CCC_MODEL)";

namespace {

const char* const kTokenizerHelp = "tokenizer file or directory (overrides discovery)";

}  // namespace

CLI::Option* ccc::cli::add_model_options(CLI::App* sub, std::string& model, std::string* tokenizer,
                                         const std::string& model_help, bool short_t) {
  auto* opt = sub->add_option("-m,--model", model, model_help);
  if (tokenizer != nullptr) sub->add_option(short_t ? "-t,--tokenizer" : "--tokenizer", *tokenizer, kTokenizerHelp);
  return opt;
}

CLI::Option* ccc::cli::add_model_options(CLI::App* sub, std::vector<std::string>& models, std::string* tokenizer,
                                         const std::string& model_help) {
  auto* opt = sub->add_option("-m,--model", models, model_help)->allow_extra_args(false);
  if (tokenizer != nullptr) sub->add_option("-t,--tokenizer", *tokenizer, kTokenizerHelp);
  return opt;
}

void ccc::cli::add_position_options(CLI::App* sub, analysis::PositionSpec& p) {
  // one value per occurrence (repeat the option): a regex like [e ] must not read as a CLI11 list
  sub->add_option("--positions", p.features, "count only positions with this automatic feature (e.g. repeated; repeatable)")->allow_extra_args(false);
  sub->add_option("--positions-regex", p.regexes, "count only tokens starting inside a match of this PCRE2 regex (repeatable)")->allow_extra_args(false);
  sub->add_option("--positions-labels", p.labels, "count only tokens starting in a byte range of this labels CSV (feature,start,end)")->allow_extra_args(false);
  sub->add_option("--exclude-positions", p.exclude_features, "leave out positions with this automatic feature")->allow_extra_args(false);
  sub->add_option("--exclude-regex", p.exclude_regexes, "leave out tokens starting inside a match")->allow_extra_args(false);
  sub->add_option("--exclude-labels", p.exclude_labels, "leave out tokens starting in a range of this labels CSV")->allow_extra_args(false);
}

namespace {

// The first word of the command line that is not an option (or --threads' value) when it names no
// command of `app` — and, for a command with commands of its own (bench), the word after it likewise;
// "" otherwise. CLI11 alone would say "A subcommand is required", or read `ccc sae train` as `ccc train`.
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* level = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads") {
      ++i;
      continue;
    }
    if (a.empty() || a[0] == '-') return "";  // options first: CLI11 reports what is wrong with them
    CLI::App* found = nullptr;
    for (auto* s : level->get_subcommands([](CLI::App*) { return true; }))
      if (s->get_name() == a) found = s;
    if (found == nullptr) return level == &app ? a : level->get_name() + " " + a;
    if (found->get_subcommands([](CLI::App*) { return true; }).empty()) return "";
    level = found;
  }
  return "";
}

// The launcher answers `ccc [COMMAND...] --help` without starting this binary (LibTorch's load is most of
// a command's start-up): at build time every help page is written into a C++ source compiled into it.
void write_help_cache(const CLI::App& app, const std::string& path) {
  std::string src =
      "// Generated at build time by `ccc-core --write-help-cache` (experiments/cli/main.cpp): every help page.\n"
      "#include \"experiments/cli/help_cache.h\"\n"
      "const ccc::cli::HelpPage ccc::cli::kHelpPages[] = {\n";
  std::function<void(const CLI::App&, const std::string&, const std::string&)> visit =
      [&](const CLI::App& a, const std::string& command, const std::string& prev) {
        const std::string text = a.help(prev);
        CCC_CHECK(text.find(")ccchelp\"") == std::string::npos, "help page of '", command, "' holds the delimiter");
        src += "    {\"" + command + "\", R\"ccchelp(" + text + ")ccchelp\"},\n";
        const std::string here = prev.empty() ? a.get_name() : prev + " " + a.get_name();
        for (const CLI::App* sub : a.get_subcommands([](const CLI::App*) { return true; }))
          visit(*sub, command.empty() ? sub->get_name() : command + " " + sub->get_name(), here);
      };
  visit(app, "", "");
  src += "    {nullptr, nullptr}};\n";
  ccc::write_file_atomic(path, src);
}

// Every integer option is parsed strictly: decimal digits with an optional '-' (none for unsigned), within
// 64 bits. CLI11 alone reads "0x10" and "010" (octal), saturates 2^64 and wraps -1 into an unsigned seed.
void strict_integers(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();
    const bool is_unsigned = type.rfind("UINT", 0) == 0, is_signed = type.rfind("INT", 0) == 0;
    if (!is_unsigned && !is_signed) continue;
    opt->check(CLI::Validator(
        [is_unsigned](std::string& s) -> std::string {
          int64_t i = 0;
          uint64_t u = 0;
          if (is_unsigned ? ccc::parse_uint64(s, &u) : ccc::parse_int64(s, &i)) return "";
          return "'" + s + "' is not a decimal integer" + (is_unsigned ? " >= 0" : "") + " of at most 64 bits";
        },
        ""));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) strict_integers(*sub);
}

}  // namespace

int main(int argc, char** argv) {
  // LibTorch's OpenMP workers spin while OpenBLAS's own threads run a GEMM, and OpenBLAS's threads spin
  // (sched_yield) while LibTorch runs elementwise kernels: the two fight over the cores (measured:
  // training 2x slower with OpenMP spinning, ~9% slower with OpenBLAS spinning). libgomp and OpenBLAS read
  // OMP_WAIT_POLICY / OPENBLAS_THREAD_TIMEOUT only at start-up, so when the user has not chosen them,
  // re-execute once with PASSIVE and the shortest OpenBLAS spin (2^4 cycles). The `ccc` launcher sets them
  // before executing this binary, so this second start only happens when ccc-core is run directly.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
  }
  // A write past `ulimit -f` must fail with EFBIG into the one-line error path (each writer removes its
  // temporary), not kill the process by SIGXFSZ and leave temporaries behind.
  ::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"ccc: measuring transformer language models in bits", "ccc"};
  app.set_version_flag("--version", std::string("ccc ") + CCC_VERSION + " (" + ccc::compress::runtime_id() + ")");
  app.option_defaults()->always_capture_default();  // every option's help shows its default value
  app.require_subcommand(1);
  app.fallthrough();  // global options (--threads) are accepted after the subcommand too
  ccc::cli::Globals g;
  for (int i = 0; i < argc; ++i) g.command += (i ? " " : "") + std::string(argv[i]);
  app.add_option("--threads", g.threads, "intra-op threads (default: all cores)");
  ccc::cli::add_model_commands(app, g);
  ccc::cli::add_train_commands(app, g);
  ccc::cli::add_compress_commands(app, g);
  ccc::cli::add_circuit_commands(app, g);
  ccc::cli::add_analysis_commands(app, g);
  ccc::cli::add_bench_commands(app, g);
  strict_integers(app);
  if (argc == 3 && std::string(argv[1]) == "--write-help-cache") {  // build step: the launcher's help pages
    write_help_cache(app, argv[2]);
    return 0;
  }
  if (argc == 1) {  // a bare `ccc` prints the help
    std::cout << app.help();
    return 0;
  }
  if (const std::string word = unknown_command(app, argc, argv); !word.empty()) {
    std::fprintf(stderr, "error: unknown command '%s' (ccc --help lists the commands)\n", word.c_str());
    return static_cast<int>(CLI::ExitCodes::ExtrasError);
  }
  // Under mpirun / srun every rank runs the command (SPMD, model/base/dist.h); an error on any rank ends
  // the job naming the rank (dist::abort_job), before any output reaches its final name.
  ccc::dist::init(&argc, &argv);
  auto fail = [](const std::string& msg) {
    std::fflush(stdout);
    if (ccc::dist::size() > 1) ccc::dist::abort_job(msg, 1);
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return 1;
  };
  try {
    app.parse(argc, argv);  // the chosen command runs from its callback
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    ccc::dist::finalize();  // every rank parsed the same line: all end here alike
    return rc;
  } catch (const c10::Error& e) {  // LibTorch (e.g. an allocation that failed): its message, not its backtrace
    std::string msg = e.what_without_backtrace();
    if (msg.find("can't allocate memory") != std::string::npos || msg.find("DefaultCPUAllocator") != std::string::npos)
      msg = "out of memory: " + msg.substr(0, msg.find('\n'));
    return fail(msg);
  } catch (const std::bad_alloc&) {
    return fail("out of memory (an allocation failed; see --max-memory and docs/limits.md)");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  // a result that could not be written is a failure (e.g. > /dev/full)
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout)) return fail("cannot write to standard output");
  ccc::dist::finalize();
  return 0;
}
