#pragma once
// CLI plumbing: each command family registers its subcommands on the app and runs them from a CLI11
// callback. Only experiments/cli links CLI11; main.cpp turns errors into exit codes.

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "analysis/positions.h"

namespace ccc::cli {

/// Options every command shares.
struct Globals {
  int threads = 0;        ///< --threads (0 = all cores)
  std::string command;    ///< the whole command line, for model cards
  /// Applies the process runtime settings (threads, allocator); each command calls it first.
  void init() const;
};

/// The help of -m when a command's model defaults to the shipped one.
extern const char* const kModelHelp;

/// The one declaration of the model options: -m/--model (help `model_help`) and, when `tokenizer` is
/// given, --tokenizer (and -t, unless `short_t` is false: in compress / decompress -t is gzip's "test").
/// Returns -m's option (e.g. to make it required).
CLI::Option* add_model_options(CLI::App* sub, std::string& model, std::string* tokenizer,
                               const std::string& model_help = kModelHelp, bool short_t = true);
/// The same for commands that take several models: -m is repeatable and adds to `models`.
CLI::Option* add_model_options(CLI::App* sub, std::vector<std::string>& models, std::string* tokenizer,
                               const std::string& model_help);

/// The position-mask options (--positions, --positions-regex, --positions-labels and their --exclude-…
/// forms) filling `spec`; `what` ends each help line ("count only …").
void add_position_options(CLI::App* sub, analysis::PositionSpec& spec);

void add_model_commands(CLI::App& app, Globals& g);     ///< info, hooks, generate, bits, init
void add_train_commands(CLI::App& app, Globals& g);     ///< train, finetune, eval
void add_compress_commands(CLI::App& app, Globals& g);  ///< compress, decompress
void add_circuit_commands(CLI::App& app, Globals& g);   ///< heads, icl, ablate, sweep
void add_analysis_commands(CLI::App& app, Globals& g);  ///< units, heldout
void add_bench_commands(CLI::App& app, Globals& g);     ///< bench forward | train | quality | compress | hooks | decode

}  // namespace ccc::cli
