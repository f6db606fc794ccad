// `ccc`: a small launcher in front of ccc-core (the command line proper, which links LibTorch).
//
// libgomp and OpenBLAS read OMP_WAIT_POLICY / OPENBLAS_THREAD_TIMEOUT once, when they are loaded, before
// any code of ours runs; their spinning defaults make LibTorch's and OpenBLAS's threads fight over the
// cores (training measured 2x slower). ccc-core used to re-execute itself to set them, loading LibTorch
// twice per command (~0.5 s); this launcher sets them (unless the user chose) and executes ccc-core once.
// It links nothing but libc, so its own start costs about a millisecond. Help pages (`ccc [COMMAND...]
// --help`, a bare `ccc`) need no model and no LibTorch: it prints them itself, from pages generated at
// build time by the same ccc-core (help_cache.h).

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "experiments/cli/help_cache.h"

namespace {

// The page `ccc ARGS` would print when ARGS is [COMMAND...] followed by -h / --help (or nothing at all);
// anything else (options, values, --version) goes to ccc-core.
const char* cached_help(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[argc - 1], "--help") != 0 && std::strcmp(argv[argc - 1], "-h") != 0) return nullptr;
  char command[256] = "";
  size_t used = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    const size_t len = std::strlen(argv[i]);
    if (argv[i][0] == '-' || used + len + 2 > sizeof command) return nullptr;
    if (used) command[used++] = ' ';
    std::memcpy(command + used, argv[i], len + 1);
    used += len;
  }
  for (const auto* p = ccc::cli::kHelpPages; p->command; ++p)
    if (std::strcmp(p->command, command) == 0) return p->text;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* page = cached_help(argc, argv)) {
    const size_t len = std::strlen(page);
    if (std::fwrite(page, 1, len, stdout) != len || std::fflush(stdout) != 0) {
      std::fprintf(stderr, "error: cannot write to standard output\n");
      return 1;
    }
    return 0;
  }
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
  }
  char self[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 16);
  if (n <= 0) {
    std::fprintf(stderr, "ccc: cannot find my own path (/proc/self/exe): %s\n", std::strerror(errno));
    return 127;
  }
  self[n] = '\0';
  char* slash = std::strrchr(self, '/');
  std::strcpy(slash + 1, "ccc-core");
  ::execv(self, argv);  // argv[0] stays as the user typed it (commands are recorded that way)
  std::fprintf(stderr, "ccc: cannot run %s: %s\n", self, std::strerror(errno));
  return 127;
}
