#include "model/decode_attention.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace ccc::model {

namespace {

// exp(x) for x <= 0 (softmax after subtracting the max): 2^(x·log2 e) split into integer and fraction,
// degree-6 polynomial for 2^f on [-0.5, 0.5] (relative error < 2e-7). The scalar and vector forms run the
// same operations, so each path is deterministic; inputs below -87 give 0.
inline float exp_neg_scalar(float x) {
  if (x < -87.0f) return 0.0f;
  const float t = x * 1.44269504088896341f;
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  p = p * f + 1.0f;
  return std::ldexp(p, static_cast<int>(n));
}

// IEEE binary16 -> binary32 (exact).
inline float to_float(float x) { return x; }
inline float to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(man & 0x400)) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Calls head(qh, kh, vh, zh, scores) for every (row, head): query, its kv head's keys and values (cap
// slots), the output, and a scratch buffer of n (rounded up to 8) floats.
template <typename KV, typename Head>
void each_head(const float* q, int64_t ldq, const KV* k, const KV* v, float* z, int64_t B, int64_t H, int64_t KH,
               int64_t cap, int64_t n, int64_t dh, Head&& head) {
  std::vector<float> s(static_cast<size_t>((n + 7) / 8 * 8));
  const int64_t group = H / KH;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      head(q + b * ldq + h * dh, k + (b * KH + h / group) * cap * dh, v + (b * KH + h / group) * cap * dh,
           z + (b * H + h) * dh, s.data());
}

template <typename KV>
void head_scalar(const float* qh, const KV* kh, const KV* vh, float* zh, float* s, int64_t n, int64_t dh,
                 float scale) {
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    float acc = 0;
    for (int64_t i = 0; i < dh; ++i) acc += qh[i] * to_float(kh[t * dh + i]);
    s[t] = acc * scale;
    mx = std::max(mx, s[t]);
  }
  float sum = 0;
  for (int64_t t = 0; t < n; ++t) sum += (s[t] = exp_neg_scalar(s[t] - mx));
  std::fill(zh, zh + dh, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dh; ++i) zh[i] += s[t] * to_float(vh[t * dh + i]);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < dh; ++i) zh[i] *= inv;
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

__attribute__((target("avx2,fma"))) inline __m256 exp_neg_avx2(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
  const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(t, n);
  __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(under, r);
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// dh must be a multiple of 8 and at most 256.
// dh must be a multiple of 8 and at most 256.
template <typename KV>
__attribute__((target("avx2,fma,f16c"))) void head_avx2(const float* qh, const KV* kh, const KV* vh, float* zh,
                                                         float* s, int64_t n, int64_t dh, float scale) {
  const int64_t lanes = dh / 8;
  __m256 qv[32];
  for (int64_t l = 0; l < lanes; ++l) qv[l] = _mm256_loadu_ps(qh + 8 * l);
  // scores
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const KV* kt = kh + t * dh;
    __m256 a0 = _mm256_mul_ps(qv[0], load8(kt));
    __m256 a1 = _mm256_setzero_ps();
    for (int64_t l = 1; l + 1 < lanes; l += 2) {
      a1 = _mm256_fmadd_ps(qv[l], load8(kt + 8 * l), a1);
      a0 = _mm256_fmadd_ps(qv[l + 1], load8(kt + 8 * l + 8), a0);
    }
    if (lanes % 2 == 0) a1 = _mm256_fmadd_ps(qv[lanes - 1], load8(kt + 8 * (lanes - 1)), a1);
    s[t] = hsum(_mm256_add_ps(a0, a1)) * scale;
    mx = std::max(mx, s[t]);
  }
  // softmax numerators
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  const int64_t n8 = n / 8 * 8;
  for (int64_t t = 0; t < n8; t += 8) {
    const __m256 e = exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + t), vmx));
    _mm256_storeu_ps(s + t, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  for (int64_t t = n8; t < n; ++t) sum += (s[t] = exp_neg_scalar(s[t] - mx));
  // weighted values
  __m256 acc[32];
  for (int64_t l = 0; l < lanes; ++l) acc[l] = _mm256_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const __m256 p = _mm256_set1_ps(s[t]);
    const KV* vt = vh + t * dh;
    for (int64_t l = 0; l < lanes; ++l) acc[l] = _mm256_fmadd_ps(p, load8(vt + 8 * l), acc[l]);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (int64_t l = 0; l < lanes; ++l) _mm256_storeu_ps(zh + 8 * l, _mm256_mul_ps(acc[l], inv));
}

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

bool have_avx2() {
  // F16C: CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c")
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

template <typename KV>
void dispatch(const float* q, const KV* k, const KV* v, float* z, int64_t B, int64_t H, int64_t KH, int64_t cap,
              int64_t n, int64_t dh, float scale, int64_t ldq) {
  const bool avx2 = have_avx2() && dh % 8 == 0 && dh <= 256;
  each_head(q, ldq > 0 ? ldq : H * dh, k, v, z, B, H, KH, cap, n, dh, [&](const float* qh, const KV* kh, const KV* vh, float* zh, float* s) {
    if (avx2)
      head_avx2(qh, kh, vh, zh, s, n, dh, scale);
    else
      head_scalar(qh, kh, vh, zh, s, n, dh, scale);
  });
}

}  // namespace

void decode_attention(const float* q, const float* k, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq) {
  dispatch(q, k, v, z, B, H, KH, cap, n, dh, scale, ldq);
}

void decode_attention(const float* q, const uint16_t* k, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq) {
  dispatch(q, k, v, z, B, H, KH, cap, n, dh, scale, ldq);
}

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

std::string decode_attention_path(int64_t dh) { return have_avx2() && dh % 8 == 0 && dh <= 256 ? "avx2" : "scalar"; }

}  // namespace ccc::model
