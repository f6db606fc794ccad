#pragma once
// Small helpers shared by the experiment and CLI files.

#include <string>

namespace ccc::experiments {

/// The shipped default model: $CCC_MODEL, else data/models/default in the source tree.
std::string default_model_path();

/// The whole of `path` as bytes; "-" reads standard input. Throws ccc::Error naming the file.
std::string read_input(const std::string& path);

/// Runs `cmd` through /bin/sh and captures its standard output into *out; returns pclose's status
/// (-1 when it could not start).
int run_capture(const std::string& cmd, std::string* out);

}  // namespace ccc::experiments
