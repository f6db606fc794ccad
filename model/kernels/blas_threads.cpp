#include "model/kernels/blas_threads.h"

#include <dlfcn.h>

namespace ccc::model {

namespace {
using SetThreadsFn = void (*)(int);
using GetIntFn = int (*)();
using GetStrFn = char* (*)();

struct Blas {
  SetThreadsFn set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  GetIntFn get = reinterpret_cast<GetIntFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  GetStrFn core = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  GetStrFn config = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
};

const Blas& blas() {
  static const Blas b;
  return b;
}
}  // namespace

int blas_threads() { return blas().get ? blas().get() : 0; }

void set_blas_threads(int n) {
  if (blas().set && n > 0) blas().set(n);
}

std::string blas_info() {
  const Blas& b = blas();
  if (!b.set) return "blas not OpenBLAS";
  std::string id;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(b.set), &info) && info.dli_fname) id += std::string("blas ") + info.dli_fname;
  if (b.config) id += std::string(" (") + b.config() + ")";
  if (b.core) id += std::string("; kernel ") + b.core();
  return id;
}

}  // namespace ccc::model
