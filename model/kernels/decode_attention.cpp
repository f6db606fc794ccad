#include "model/kernels/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "model/kernels/simd_math.h"

namespace ccc::model {

namespace {
using namespace simd;

// Per (row, head), in three stages that both paths run in the same order: scores and their max, the
// softmax numerators e_t = exp(s_t - max) and their sum, then z = (Σ e_t v_t) / sum.

template <typename KV>
float scores_scalar(const float* qh, const KV* kh, float* s, int64_t n, int64_t dh, float scale) {
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    float acc = 0;
    for (int64_t i = 0; i < dh; ++i) acc += qh[i] * to_float(kh[t * dh + i]);
    s[t] = acc * scale;
    mx = std::max(mx, s[t]);
  }
  return mx;
}

float exp_scalar(float* s, int64_t n, float mx) {
  float sum = 0;
  for (int64_t t = 0; t < n; ++t) sum += (s[t] = exp_neg_scalar(s[t] - mx));
  return sum;
}

template <typename KV>
void values_scalar(const float* s, const KV* vh, float* zh, int64_t n, int64_t dh, float inv) {
  std::fill(zh, zh + dh, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dh; ++i) zh[i] += s[t] * to_float(vh[t * dh + i]);
  for (int64_t i = 0; i < dh; ++i) zh[i] *= inv;
}

// q·k of one slot as 8 partial sums (two FMA chains; dh a multiple of 8, at most 256). LANES > 0 fixes
// dh / 8 at compile time so the loops unroll and stay in registers; LANES = 0 reads it from `lanes`. The
// operations and their order are the same either way (results are bit-identical).
template <int LANES, typename KV>
__attribute__((target("avx2,fma,f16c"))) inline __m256 dot8(const __m256* qv, const KV* kt, int64_t lanes) {
  if constexpr (LANES > 0) lanes = LANES;
  __m256 a0 = _mm256_mul_ps(qv[0], load8(kt));
  __m256 a1 = _mm256_setzero_ps();
  for (int64_t l = 1; l + 1 < lanes; l += 2) {
    a1 = _mm256_fmadd_ps(qv[l], load8(kt + 8 * l), a1);
    a0 = _mm256_fmadd_ps(qv[l + 1], load8(kt + 8 * l + 8), a0);
  }
  if (lanes % 2 == 0) a1 = _mm256_fmadd_ps(qv[lanes - 1], load8(kt + 8 * (lanes - 1)), a1);
  return _mm256_add_ps(a0, a1);
}

// dh must be a multiple of 8 and at most 256. Slots go 8 at a time: their partial sums are reduced
// together (hadd tree + one cross-lane add) instead of one horizontal sum per slot.
template <int LANES, typename KV>
__attribute__((target("avx2,fma,f16c"))) float scores_lanes(const float* qh, const KV* kh, float* s, int64_t n,
                                                            int64_t dh, float scale) {
  const int64_t lanes = LANES > 0 ? LANES : dh / 8;
  __m256 qv[LANES > 0 ? LANES : 32];
  for (int64_t l = 0; l < lanes; ++l) qv[l] = _mm256_loadu_ps(qh + 8 * l);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    __m256 v[8];
    for (int j = 0; j < 8; ++j) v[j] = dot8<LANES>(qv, kh + (t + j) * dh, lanes);
    const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
    const __m256 sc = _mm256_mul_ps(sum, vscale);
    _mm256_storeu_ps(s + t, sc);
    vmx = _mm256_max_ps(vmx, sc);
  }
  alignas(32) float m8[8];
  _mm256_store_ps(m8, vmx);
  float mx = m8[0];
  for (int j = 1; j < 8; ++j) mx = std::max(mx, m8[j]);
  for (; t < n; ++t) {
    s[t] = hsum(dot8<LANES>(qv, kh + t * dh, lanes)) * scale;
    mx = std::max(mx, s[t]);
  }
  return mx;
}

// f(std::integral_constant<int, dh / 8>) for the common head sizes (loops that unroll and keep their
// accumulators in registers), f(std::integral_constant<int, 0>) (count read at run time) otherwise. Not
// dh = 16: with two lanes fixed GCC contracts a0 + q1·k1 into one FMA (-ffp-contract=fast), which changes
// the bits of the scores and so of every compressed file; checked bit for bit against the runtime loop
// for dh 8..256.
template <typename F>
decltype(auto) with_lanes(int64_t dh, F&& f) {
  switch (dh / 8) {
    case 4: return f(std::integral_constant<int, 4>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

template <typename KV>
float scores_avx2(const float* qh, const KV* kh, float* s, int64_t n, int64_t dh, float scale) {
  return with_lanes(dh, [&](auto lanes) { return scores_lanes<decltype(lanes)::value>(qh, kh, s, n, dh, scale); });
}

__attribute__((target("avx2,fma,f16c"))) float exp_avx2(float* s, int64_t n, float mx) {
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
  return sum;
}

// z = inv · Σ_t s[t] v[t], one accumulator per 8 dims, slots in order. With LANES > 0 the accumulators
// live in registers (a runtime count keeps them on the stack: a store-to-load round trip per FMA).
template <int LANES, typename KV>
__attribute__((target("avx2,fma,f16c"))) void values_lanes(const float* s, const KV* vh, float* zh, int64_t n,
                                                           int64_t dh, float inv) {
  const int64_t lanes = LANES > 0 ? LANES : dh / 8;
  __m256 acc[LANES > 0 ? LANES : 32];
  for (int64_t l = 0; l < lanes; ++l) acc[l] = _mm256_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const __m256 p = _mm256_set1_ps(s[t]);
    const KV* vt = vh + t * dh;
    for (int64_t l = 0; l < lanes; ++l) acc[l] = _mm256_fmadd_ps(p, load8(vt + 8 * l), acc[l]);
  }
  const __m256 vinv = _mm256_set1_ps(inv);
  for (int64_t l = 0; l < lanes; ++l) _mm256_storeu_ps(zh + 8 * l, _mm256_mul_ps(acc[l], vinv));
}

template <typename KV>
void values_avx2(const float* s, const KV* vh, float* zh, int64_t n, int64_t dh, float inv) {
  with_lanes(dh, [&](auto lanes) { values_lanes<decltype(lanes)::value>(s, vh, zh, n, dh, inv); });
}

bool use_avx2(int64_t dh) { return have_avx2() && dh % 8 == 0 && dh <= 256; }

// Calls head(b, h, qh, kh, vh) for every (row, head) pair b·H + h in [t0, t1) with its query and its kv
// head's keys and values.
template <typename KV, typename Head>
void each_head(const float* q, int64_t ldq, const KV* k, const KV* v, int64_t B, int64_t H, int64_t KH, int64_t cap,
               int64_t dh, Head&& head, int64_t t0 = 0, int64_t t1 = -1) {
  const int64_t group = H / KH;
  if (t1 < 0) t1 = B * H;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t b = t / H, h = t % H;
    head(b, h, q == nullptr ? nullptr : q + b * ldq + h * dh, k + (b * KH + h / group) * cap * dh,
         v + (b * KH + h / group) * cap * dh);
  }
}

template <typename KV>
void attend(const float* q, const KV* k, const KV* v, float* z, int64_t B, int64_t H, int64_t KH, int64_t cap,
            int64_t n, int64_t dh, float scale, int64_t ldq, int64_t t0, int64_t t1) {
  const bool avx2 = use_avx2(dh);
  std::vector<float> s(static_cast<size_t>((n + 7) / 8 * 8));
  each_head(q, ldq > 0 ? ldq : H * dh, k, v, B, H, KH, cap, dh,
            [&](int64_t b, int64_t h, const float* qh, const KV* kh, const KV* vh) {
              float* zh = z + (b * H + h) * dh;
              if (avx2) {
                const float sum = exp_avx2(s.data(), n, scores_avx2(qh, kh, s.data(), n, dh, scale));
                values_avx2(s.data(), vh, zh, n, dh, 1.0f / sum);
              } else {
                const float sum = exp_scalar(s.data(), n, scores_scalar(qh, kh, s.data(), n, dh, scale));
                values_scalar(s.data(), vh, zh, n, dh, 1.0f / sum);
              }
            },
            t0, t1);
}

template <typename KV>
void probs(const float* q, const KV* k, int64_t B, int64_t H, int64_t KH, int64_t cap, int64_t n, int64_t dh,
           float scale, int64_t ldq, float* scores, float* pattern) {
  const bool avx2 = use_avx2(dh);
  std::vector<float> s(static_cast<size_t>((n + 7) / 8 * 8));
  each_head(q, ldq > 0 ? ldq : H * dh, k, k, B, H, KH, cap, dh,
            [&](int64_t b, int64_t h, const float* qh, const KV* kh, const KV*) {
              const float mx = avx2 ? scores_avx2(qh, kh, s.data(), n, dh, scale) : scores_scalar(qh, kh, s.data(), n, dh, scale);
              std::copy(s.data(), s.data() + n, scores + (b * H + h) * n);
              const float sum = avx2 ? exp_avx2(s.data(), n, mx) : exp_scalar(s.data(), n, mx);
              const float inv = 1.0f / sum;
              float* p = pattern + (b * H + h) * n;
              for (int64_t t = 0; t < n; ++t) p[t] = s[t] * inv;
            });
}

template <typename KV>
void apply(const float* pattern, const KV* v, float* z, int64_t B, int64_t H, int64_t KH, int64_t cap, int64_t n,
           int64_t dh) {
  const bool avx2 = use_avx2(dh);
  each_head<KV>(nullptr, 0, v, v, B, H, KH, cap, dh, [&](int64_t b, int64_t h, const float*, const KV*, const KV* vh) {
    const float* p = pattern + (b * H + h) * n;
    float* zh = z + (b * H + h) * dh;
    if (avx2)
      values_avx2(p, vh, zh, n, dh, 1.0f);
    else
      values_scalar(p, vh, zh, n, dh, 1.0f);
  });
}

}  // namespace

void decode_attention(const float* q, const float* k, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq, int64_t task_begin,
                      int64_t task_end) {
  attend(q, k, v, z, B, H, KH, cap, n, dh, scale, ldq, task_begin, task_end);
}

void decode_attention(const float* q, const uint16_t* k, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                      int64_t cap, int64_t n, int64_t dh, float scale, int64_t ldq, int64_t task_begin,
                      int64_t task_end) {
  attend(q, k, v, z, B, H, KH, cap, n, dh, scale, ldq, task_begin, task_end);
}

void decode_attention_probs(const float* q, const float* k, int64_t B, int64_t H, int64_t KH, int64_t cap, int64_t n,
                            int64_t dh, float scale, int64_t ldq, float* scores, float* pattern) {
  probs(q, k, B, H, KH, cap, n, dh, scale, ldq, scores, pattern);
}

void decode_attention_probs(const float* q, const uint16_t* k, int64_t B, int64_t H, int64_t KH, int64_t cap,
                            int64_t n, int64_t dh, float scale, int64_t ldq, float* scores, float* pattern) {
  probs(q, k, B, H, KH, cap, n, dh, scale, ldq, scores, pattern);
}

void decode_attention_apply(const float* pattern, const float* v, float* z, int64_t B, int64_t H, int64_t KH,
                            int64_t cap, int64_t n, int64_t dh) {
  apply(pattern, v, z, B, H, KH, cap, n, dh);
}

void decode_attention_apply(const float* pattern, const uint16_t* v, float* z, int64_t B, int64_t H, int64_t KH,
                            int64_t cap, int64_t n, int64_t dh) {
  apply(pattern, v, z, B, H, KH, cap, n, dh);
}

std::string decode_attention_path(int64_t dh) { return use_avx2(dh) ? "avx2" : "scalar"; }

}  // namespace ccc::model
