#include "model/kernels/blas_threads.h"

#include <dlfcn.h>

#include "model/base/error.h"

namespace ccc::model {

namespace {
using SetThreadsFn = void (*)(int);
using GetIntFn = int (*)();
using GetStrFn = char* (*)();
// cblas_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); CBLAS enum values
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

struct Blas {
  SetThreadsFn set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  GetIntFn get = reinterpret_cast<GetIntFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  GetStrFn core = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  GetStrFn config = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  SgemmFn sgemm = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
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

void sgemm_row_major(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const Blas& bl = blas();
  CCC_CHECK(bl.sgemm != nullptr, "cblas_sgemm not found in the process (libtorch's libblas.so.3 should provide it)");
  bl.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, static_cast<int>(m),
           static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
           static_cast<int>(ldc));
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
