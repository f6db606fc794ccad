#include "model/kernels/elementwise.h"

#include <algorithm>
#include <cmath>

#include "model/kernels/simd_math.h"

namespace ccc::model {

namespace {
using namespace simd;

// gelu_tanh(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), tanh(|u|) = (1 - e) / (1 + e) with
// e = exp(-2|u|) <= 1: absolute error of tanh < 3e-7.
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;

// t = tanh(u(x)), shared by the forward and the backward
inline float gelu_t_scalar(float x) {
  const float u = kGeluC * (x + kGeluA * x * x * x);
  const float e = exp_neg_scalar(-2.0f * std::fabs(u));
  return std::copysign((1.0f - e) / (1.0f + e), u);
}

__attribute__((target("avx2,fma"))) inline __m256 gelu_t_avx2(__m256 v) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_set1_ps(kGeluA);
  const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(a, v), v), v);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(kGeluC), _mm256_add_ps(v, cube));
  const __m256 e = exp_neg_avx2(_mm256_mul_ps(_mm256_set1_ps(-2.0f), _mm256_andnot_ps(sign, u)));
  return _mm256_or_ps(_mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e)), _mm256_and_ps(sign, u));
}

inline float gelu_scalar(float x) { return 0.5f * x * (1.0f + gelu_t_scalar(x)); }

// d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
inline float gelu_grad_scalar(float x) {
  const float t = gelu_t_scalar(x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
}

__attribute__((target("avx2,fma"))) void gelu_avx2(const float* x, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, gelu_t_avx2(v))));
  }
  for (; i < n; ++i) y[i] = gelu_scalar(x[i]);
}

__attribute__((target("avx2,fma"))) void gelu_backward_avx2(const float* x, const float* g, float* out, int64_t n) {
  const __m256 c = _mm256_set1_ps(kGeluC), a3 = _mm256_set1_ps(3.0f * kGeluA), one = _mm256_set1_ps(1.0f),
               half = _mm256_set1_ps(0.5f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 t = gelu_t_avx2(v);
    const __m256 left = _mm256_mul_ps(half, _mm256_add_ps(one, t));
    const __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_sub_ps(one, _mm256_mul_ps(t, t))),
                                       _mm256_mul_ps(c, _mm256_fmadd_ps(a3, _mm256_mul_ps(v, v), one)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), _mm256_add_ps(left, right)));
  }
  for (; i < n; ++i) out[i] = g[i] * gelu_grad_scalar(x[i]);
}


// fp32 -> fp16, round to nearest even (NaN stays NaN, overflow to inf)
inline uint16_t half_scalar(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (x < 0x38800000u) {  // subnormal or zero in fp16
    if (x < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (113 - e) - 1
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((x >> 13) - (112u << 10));
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

__attribute__((target("avx2,fma,f16c"))) void half_avx2(const float* x, uint16_t* h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) h[i] = half_scalar(x[i]);
}

}  // namespace

void rotate_half(const float* in, float* out, const float* cos, const float* sin, int64_t rd, bool inverse) {
  const int64_t half = rd / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = in[i], b = in[i + half];
    if (!inverse) {
      out[i] = a * cos[i] - b * sin[i];
      out[i + half] = b * cos[i + half] + a * sin[i + half];
    } else {
      out[i] = a * cos[i] + b * sin[i + half];
      out[i + half] = b * cos[i + half] - a * sin[i];
    }
  }
}

void rotate_heads_inplace(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t dh, int64_t rd, const float* cos,
                          const float* sin) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h) rotate_half(x + r * ld + h * dh, x + r * ld + h * dh, cos, sin, rd, false);
}

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  if (have_avx2()) {
    gelu_avx2(x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = gelu_scalar(x[i]);
  }
}

void gelu_tanh_backward(const float* x, const float* g, float* out, int64_t n) {
  if (have_avx2()) {
    gelu_backward_avx2(x, g, out, n);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] * gelu_grad_scalar(x[i]);
  }
}

void gelu_erf_forward(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void silu_forward(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void relu_forward(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

namespace {

// Row statistics in double, element by element in index order (the sums' order is part of the numbers the
// compressor codes with). The AVX2 versions take four rows at a time, one per double lane: a 4 x 4
// transpose puts element i of the four rows side by side, and each lane then runs exactly the scalar
// row's sequence of IEEE adds, subtracts and multiplies (no FMA in this function: bit-identical).
void layer_norm_stats_scalar(const float* xr, int64_t d, float eps, float* mean, float* scale) {
  double s = 0;
  for (int64_t i = 0; i < d; ++i) s += xr[i];
  const double mu = s / static_cast<double>(d);
  double v = 0;
  for (int64_t i = 0; i < d; ++i) v += (xr[i] - mu) * (xr[i] - mu);
  *mean = static_cast<float>(mu);
  *scale = static_cast<float>(std::sqrt(v / static_cast<double>(d) + eps));
}

void rms_stats_scalar(const float* xr, int64_t d, float eps, float* scale) {
  double s = 0;
  for (int64_t i = 0; i < d; ++i) s += static_cast<double>(xr[i]) * xr[i];
  *scale = static_cast<float>(std::sqrt(s / static_cast<double>(d) + eps));
}

// c[k][j] = element i + k of row j (as double), k = 0..3: four consecutive columns of four rows.
__attribute__((target("avx2"))) inline void columns4(const float* const* x, int64_t i, __m256d c[4]) {
  __m128 r0 = _mm_loadu_ps(x[0] + i), r1 = _mm_loadu_ps(x[1] + i), r2 = _mm_loadu_ps(x[2] + i), r3 = _mm_loadu_ps(x[3] + i);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  c[0] = _mm256_cvtps_pd(r0);
  c[1] = _mm256_cvtps_pd(r1);
  c[2] = _mm256_cvtps_pd(r2);
  c[3] = _mm256_cvtps_pd(r3);
}

__attribute__((target("avx2"))) inline __m256d column1(const float* const* x, int64_t i) {
  return _mm256_set_pd(x[3][i], x[2][i], x[1][i], x[0][i]);
}

// Per row j of the four, Σ_i term(x_ji) with i ascending: term = x (kSum), (x − mu_j)² (kCentered) or x²
// (kSquares), each one IEEE add of one IEEE product or difference, as the scalar loops do.
enum class Term { kSum, kCentered, kSquares };
template <Term kTerm>
__attribute__((target("avx2"))) inline __m256d add_term(__m256d acc, __m256d c, __m256d mu) {
  if constexpr (kTerm == Term::kSum) return _mm256_add_pd(acc, c);
  const __m256d t = kTerm == Term::kCentered ? _mm256_sub_pd(c, mu) : c;
  return _mm256_add_pd(acc, _mm256_mul_pd(t, t));
}

template <Term kTerm>
__attribute__((target("avx2"))) __m256d row_sums4(const float* const* rows, int64_t d, __m256d mu) {
  const int64_t d4 = d / 4 * 4;
  __m256d c[4];
  __m256d s = _mm256_setzero_pd();
  for (int64_t i = 0; i < d4; i += 4) {
    columns4(rows, i, c);
    for (int k = 0; k < 4; ++k) s = add_term<kTerm>(s, c[k], mu);
  }
  for (int64_t i = d4; i < d; ++i) s = add_term<kTerm>(s, column1(rows, i), mu);
  return s;
}

// sqrt(sum / d + eps) per lane, as float
__attribute__((target("avx2"))) __m128 root_mean4(__m256d sum, int64_t d, float eps) {
  return _mm256_cvtpd_ps(_mm256_sqrt_pd(
      _mm256_add_pd(_mm256_div_pd(sum, _mm256_set1_pd(static_cast<double>(d))), _mm256_set1_pd(static_cast<double>(eps)))));
}

__attribute__((target("avx2"))) void layer_norm_stats4_avx2(const float* x, int64_t d, float eps, float* mean, float* scale) {
  const float* rows[4] = {x, x + d, x + 2 * d, x + 3 * d};
  const __m256d zero = _mm256_setzero_pd();
  const __m256d mu = _mm256_div_pd(row_sums4<Term::kSum>(rows, d, zero), _mm256_set1_pd(static_cast<double>(d)));
  _mm_storeu_ps(mean, _mm256_cvtpd_ps(mu));
  _mm_storeu_ps(scale, root_mean4(row_sums4<Term::kCentered>(rows, d, mu), d, eps));
}

__attribute__((target("avx2"))) void rms_stats4_avx2(const float* x, int64_t d, float eps, float* scale) {
  const float* rows[4] = {x, x + d, x + 2 * d, x + 3 * d};
  _mm_storeu_ps(scale, root_mean4(row_sums4<Term::kSquares>(rows, d, _mm256_setzero_pd()), d, eps));
}

}  // namespace

void layer_norm_rows(const float* x, int64_t rows, int64_t d, const float* w, const float* b, float eps, float* y,
                     float* mean, float* scale) {
  int64_t r = 0;
  if (have_avx2())
    for (; r + 4 <= rows; r += 4) layer_norm_stats4_avx2(x + r * d, d, eps, mean + r, scale + r);
  for (; r < rows; ++r) layer_norm_stats_scalar(x + r * d, d, eps, mean + r, scale + r);
  norm_rows_from_scale(x, rows, d, w, b, mean, scale, y);
}

void rms_norm_rows(const float* x, int64_t rows, int64_t d, const float* w, float eps, float* y, float* scale) {
  int64_t r = 0;
  if (have_avx2())
    for (; r + 4 <= rows; r += 4) rms_stats4_avx2(x + r * d, d, eps, scale + r);
  for (; r < rows; ++r) rms_stats_scalar(x + r * d, d, eps, scale + r);
  norm_rows_from_scale(x, rows, d, w, nullptr, nullptr, scale, y);
}

void norm_rows_from_scale(const float* x, int64_t rows, int64_t d, const float* w, const float* b, const float* mean,
                          const float* scale, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    const float mu = mean != nullptr ? mean[r] : 0.0f, inv = 1.0f / scale[r];
    for (int64_t i = 0; i < d; ++i) {
      const float v = (xr[i] - mu) * inv * w[i];
      yr[i] = b != nullptr ? v + b[i] : v;
    }
  }
}

__attribute__((target("avx2,fma"))) static void numerators_avx2(const float* x, int64_t n, float mx, float* e) {
  const __m256 vmx = _mm256_set1_ps(mx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(e + i, exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx)));
  for (; i < n; ++i) e[i] = exp_neg_scalar(x[i] - mx);
}

float softmax_numerators(const float* x, int64_t n, float* e) {
  if (n <= 0) return 0.0f;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  if (have_avx2()) {
    numerators_avx2(x, n, mx, e);
  } else {
    for (int64_t i = 0; i < n; ++i) e[i] = exp_neg_scalar(x[i] - mx);
  }
  return mx;
}

void float_to_half(const float* x, uint16_t* h, int64_t n) {
  if (have_avx2()) {
    half_avx2(x, h, n);
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = half_scalar(x[i]);
  }
}

}  // namespace ccc::model
