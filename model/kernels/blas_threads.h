#pragma once
// OpenBLAS thread control, looked up at run time (libtorch links whichever libblas.so.3 is installed;
// with another BLAS these are no-ops and blas_info() says so).

#include <string>

namespace ccc::model {

/// OpenBLAS's thread count, or 0 when the BLAS is not OpenBLAS.
int blas_threads();
/// Sets OpenBLAS's thread count (no-op without OpenBLAS).
void set_blas_threads(int n);
/// Library path, build configuration and kernel of the BLAS in use.
std::string blas_info();

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
