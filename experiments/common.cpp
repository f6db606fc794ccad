#include "experiments/common.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>

#include "model/base/util.h"

namespace ccc::experiments {

std::string default_model_path() {
  if (const char* env = std::getenv("CCC_MODEL"); env != nullptr && *env) return env;
  return (std::filesystem::path(CCC_SOURCE_DIR) / "data" / "models" / "default").string();
}

std::string read_input(const std::string& path) {
  if (path == "-") return std::string((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return read_file(path);
}

int run_capture(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[65536];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  return ::pclose(p);
}

}  // namespace ccc::experiments
