#include "model/kernels/decode_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace ccc::model {

namespace {

constexpr int64_t kPanel = 16;

bool have_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

// R rows of x times one panel: c[r][j] = bias[j] + Σ_k x[r][k] · panel[k][j], k ascending.
// `next` (may be null): the next panel, fetched into L2 one cache line per k step (a panel holds one line
// per k), so the weights stream in while this panel computes instead of stalling the next one.
template <int R>
__attribute__((target("avx2,fma"))) void kernel_avx2(const float* x, int64_t ldx, const float* panel, int64_t k,
                                                     const float* bias16, float* y, int64_t ldy, int64_t cols,
                                                     const float* next) {
  __m256 c0[R], c1[R];
  const __m256 b0 = _mm256_loadu_ps(bias16), b1 = _mm256_loadu_ps(bias16 + 8);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    c0[r] = b0;
    c1[r] = b1;
  }
  for (int64_t i = 0; i < k; ++i) {
    if (next != nullptr) _mm_prefetch(reinterpret_cast<const char*>(next + i * kPanel), _MM_HINT_T1);
    const __m256 w0 = _mm256_loadu_ps(panel + i * kPanel), w1 = _mm256_loadu_ps(panel + i * kPanel + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(x + r * ldx + i);
      c0[r] = _mm256_fmadd_ps(a, w0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, w1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    if (cols == kPanel) {
      _mm256_storeu_ps(y + r * ldy, c0[r]);
      _mm256_storeu_ps(y + r * ldy + 8, c1[r]);
    } else {
      alignas(32) float tmp[kPanel];
      _mm256_store_ps(tmp, c0[r]);
      _mm256_store_ps(tmp + 8, c1[r]);
      std::memcpy(y + r * ldy, tmp, sizeof(float) * cols);
    }
  }
}

template <int R>
void kernel_scalar(const float* x, int64_t ldx, const float* panel, int64_t k, const float* bias16, float* y,
                   int64_t ldy, int64_t cols) {
  float c[R][kPanel];
  for (int r = 0; r < R; ++r) std::copy(bias16, bias16 + kPanel, c[r]);
  for (int64_t i = 0; i < k; ++i)
    for (int r = 0; r < R; ++r)
      for (int64_t j = 0; j < kPanel; ++j) c[r][j] += x[r * ldx + i] * panel[i * kPanel + j];
  for (int r = 0; r < R; ++r) std::memcpy(y + r * ldy, c[r], sizeof(float) * cols);
}

template <int R>
void kernel(bool avx2, const float* x, int64_t ldx, const float* panel, int64_t k, const float* bias16, float* y,
            int64_t ldy, int64_t cols, const float* next) {
  if (avx2)
    kernel_avx2<R>(x, ldx, panel, k, bias16, y, ldy, cols, next);
  else
    kernel_scalar<R>(x, ldx, panel, k, bias16, y, ldy, cols);
}

}  // namespace

PackedLinear pack_linear(const float* w, int64_t n, int64_t k) {
  PackedLinear p;
  p.n = n;
  p.k = k;
  const int64_t panels = (n + kPanel - 1) / kPanel;
  p.panels.assign(static_cast<size_t>(panels * k * kPanel), 0.0f);
  for (int64_t pi = 0; pi < panels; ++pi)
    for (int64_t j = 0; j < kPanel && pi * kPanel + j < n; ++j) {
      const float* row = w + (pi * kPanel + j) * k;
      float* dst = p.panels.data() + pi * k * kPanel + j;
      for (int64_t i = 0; i < k; ++i) dst[i * kPanel] = row[i];
    }
  return p;
}

void packed_linear(const float* x, int64_t m, int64_t ldx, const PackedLinear& w, const float* bias, float* y,
                   int64_t panel_begin, int64_t panel_end) {
  const bool avx2 = have_avx2();
  const int64_t panels = panel_end >= 0 ? panel_end : (w.n + kPanel - 1) / kPanel;
  for (int64_t pi = panel_begin; pi < panels; ++pi) {
    const int64_t col = pi * kPanel, cols = std::min(kPanel, w.n - col);
    alignas(32) float b16[kPanel] = {};
    if (bias != nullptr) std::copy(bias + col, bias + col + cols, b16);
    const float* panel = w.panels.data() + pi * w.k * kPanel;
    const float* next = pi + 1 < panels ? panel + w.k * kPanel : nullptr;  // prefetched by the first row block
    // Blocks of 6 rows, but never a tail of 1 or 2 after them: a 1-row block has only two FMA chains (each
    // k step waits for the last) and costs about as much as a 6-row one, and the decode path calls this
    // with 7 or 8 rows per thread. 7 = 4 + 3 and 8 = 4 + 4 instead. Each row's sums are the same whatever
    // block it is in (bias, then k ascending), so the choice never changes a bit.
    const int64_t tail = m >= 6 && m % 6 == 1 ? 7 : m >= 6 && m % 6 == 2 ? 8 : m % 6;
    int64_t r = 0;
    for (; r + 6 <= m - tail; r += 6, next = nullptr)
      kernel<6>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next);
    if (m - r >= 7) {
      kernel<4>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next);
      r += 4;
      next = nullptr;
    }
    switch (m - r) {
      case 6: kernel<6>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      case 5: kernel<5>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      case 4: kernel<4>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      case 3: kernel<3>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      case 2: kernel<2>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      case 1: kernel<1>(avx2, x + r * ldx, ldx, panel, w.k, b16, y + r * w.n + col, w.n, cols, next); break;
      default: break;
    }
  }
}

std::string packed_linear_path() { return have_avx2() ? "avx2" : "scalar"; }

}  // namespace ccc::model
