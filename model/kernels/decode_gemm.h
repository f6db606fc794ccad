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

/// y [m, n] = x [m, k] · W^T + bias (bias may be null). x rows are `ldx` floats apart.
void packed_linear(const float* x, int64_t m, int64_t ldx, const PackedLinear& w, const float* bias, float* y);

/// "avx2" or "scalar".
std::string packed_linear_path();

}  // namespace ccc::model
