// `ccc`: a small launcher in front of ccc-core (the command line proper, which links LibTorch).
//
// libgomp and OpenBLAS read OMP_WAIT_POLICY / OPENBLAS_THREAD_TIMEOUT once, when they are loaded, before
// any code of ours runs; their spinning defaults make LibTorch's and OpenBLAS's threads fight over the
// cores (training measured 2x slower). ccc-core used to re-execute itself to set them, loading LibTorch
// twice per command (~0.5 s); this launcher sets them (unless the user chose) and executes ccc-core once.
// It links nothing but libc, so its own start costs about a millisecond.

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  (void)argc;
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
