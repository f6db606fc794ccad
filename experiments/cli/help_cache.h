#pragma once
// Help pages of every command, generated at build time from ccc-core's own CLI (see write_help_cache in
// main.cpp) and compiled into the `ccc` launcher, which prints them without loading LibTorch.

namespace ccc::cli {

struct HelpPage {
  const char* command;  ///< "" for the top level, "compress", "bench compress", ...
  const char* text;     ///< exactly what `ccc COMMAND --help` prints
};

/// Terminated by {nullptr, nullptr}.
extern const HelpPage kHelpPages[];

}  // namespace ccc::cli
