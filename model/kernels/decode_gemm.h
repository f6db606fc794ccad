#pragma once
// y = x W^T + b for the few rows of a decoding step, with W packed once into 16-column panels.
//
// OpenBLAS repacks the whole weight matrix on every call, which at 8..128 rows costs a third of the
// GEMM. Here each weight is packed once (PackedLinear) and every output element is accumulated as
// bias + Σ_k x[k]·W[n][k] in increasing k with FMA, whatever the number of rows: a row's result does
// not depend on the batch it sits in, nor on threads. AVX2+FMA when the CPU has them, else scalar.
// No torch here: raw float arrays.

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::model {

struct PackedLinear {
  int64_t n = 0, k = 0;       ///< W is [n, k]
  std::vector<float> panels;  ///< ceil(n / 16) panels of [k, 16] (columns past n are zero)
};

/// Packs W [n, k] (row-major).
PackedLinear pack_linear(const float* w, int64_t n, int64_t k);

/// y [m, n] = x [m, k] · W^T + bias (bias may be null). x rows are `ldx` floats apart. With a panel range
/// [panel_begin, panel_end) (16 columns each; end -1 = all), only those output columns are computed, with
/// the same arithmetic: callers split a GEMM across threads by panels.
void packed_linear(const float* x, int64_t m, int64_t ldx, const PackedLinear& w, const float* bias, float* y,
                   int64_t panel_begin = 0, int64_t panel_end = -1);

/// Number of 16-column panels of w.
inline int64_t packed_panels(const PackedLinear& w) { return (w.n + 15) / 16; }

/// "avx2" or "scalar".
std::string packed_linear_path();

}  // namespace ccc::model
