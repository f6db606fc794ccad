#pragma once
// OpenBLAS thread control and a direct GEMM, looked up at run time (libtorch links whichever
// libblas.so.3 is installed; with another BLAS the thread calls are no-ops and blas_info() says so).

#include <cstdint>
#include <string>

namespace ccc::model {

/// OpenBLAS's thread count, or 0 when the BLAS is not OpenBLAS.
int blas_threads();
/// Sets OpenBLAS's thread count (no-op without OpenBLAS).
void set_blas_threads(int n);
/// Library path, build configuration and kernel of the BLAS in use.
std::string blas_info();

/// Row-major C[m, n] = alpha · op(A) · op(B) + beta · C (op(A) [m, k], op(B) [k, n]; lda, ldb, ldc are row
/// strides) through the BLAS's cblas_sgemm, for kernels that work on raw float blocks inside one tensor.
void sgemm_row_major(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// Pins OpenBLAS to `n` threads for the lifetime of the object (restores the previous count).
class ScopedBlasThreads {
 public:
  explicit ScopedBlasThreads(int n) : prev_(blas_threads()) { set_blas_threads(n); }
  ~ScopedBlasThreads() {
    if (prev_ > 0) set_blas_threads(prev_);
  }
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  int prev_;
};

}  // namespace ccc::model
