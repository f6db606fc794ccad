#include "compress/context_mixer.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "model/base/error.h"

namespace ccc::compress {

namespace {

// ---- logistic domain (12-bit probabilities, stretch in 1/256 nat, |stretch| ≤ 2047) -------------------

// 4096 / (1 + e^{−x/256}) at x = −2048 + 128·k, k = 0..32, rounded: the logistic curve the squash
// interpolates (integers, so the map is the same on every machine).
constexpr int kSquashKnots[33] = {1,    2,    4,    6,    10,   17,   27,   45,   74,   120,  194,
                                  311,  488,  747,  1102, 1546, 2048, 2550, 2994, 3349, 3608, 3785,
                                  3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095};

inline int squash(int d) {
  if (d > 2047) return 4095;
  if (d < -2047) return 1;
  const int w = d & 127;
  const int i = (d >> 7) + 16;
  return (kSquashKnots[i] * (128 - w) + kSquashKnots[i + 1] * w + 64) >> 7;
}

struct Tables {
  std::array<int16_t, 4096> stretch{};  // inverse of squash
  std::array<int32_t, 1024> rec{};      // 2^17 / (2n + 3): counter step 1/(n + 1.5) in 1/65536
  Tables() {
    int pi = 0;
    for (int x = -2047; x <= 2047; ++x) {
      const int v = squash(x);
      for (int j = pi; j <= v; ++j) stretch[j] = static_cast<int16_t>(x);
      pi = v + 1;
    }
    for (int j = pi; j < 4096; ++j) stretch[j] = 2047;
    for (int n = 0; n < 1024; ++n) rec[n] = (1 << 17) / (2 * n + 3);
  }
};
const Tables kTables;  // built once at load: integer arithmetic only
inline int stretch(int p) { return kTables.stretch[p]; }

// ---- adaptive counters: 22-bit probability (high) and a 10-bit count (low) in one word -----------------

constexpr uint32_t kCounterInit = uint32_t{1} << 31;  // p = 1/2, n = 0
inline int counter_p(uint32_t c) { return static_cast<int>(c >> 20); }  // 12 bits
inline void counter_update(uint32_t& c, int y, uint32_t limit) {
  const uint32_t n = c & 1023;
  const int64_t p = c >> 10;
  const int64_t target = y ? (int64_t{1} << 22) - 1 : 0;
  const int64_t np = p + (((target - p) * kTables.rec[n]) >> 16);
  c = (static_cast<uint32_t>(np) << 10) | (n < limit ? n + 1 : n);
}

// Hashed contexts: one 64-byte bucket per (context, nibble) holds the 15 counters of the nibble's
// binary tree; a 16-bit tag tells contexts apart; buckets i and i^1 form a two-way set.
struct alignas(64) Bucket {
  uint16_t tag;
  uint16_t unused;
  uint32_t node[15];
};
static_assert(sizeof(Bucket) == 64, "one bucket per cache line");

inline uint64_t mix64(uint64_t h) {
  h ^= h >> 31;
  h *= 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  return h;
}

// ---- online logistic mixer ---------------------------------------------------------------------------

constexpr int kOrders = 7;  // hashed: orders 2, 3, 4, 6, the word model and two sparse contexts
// mixer inputs: order 0, order 1, the hashed contexts, the match model (its map and its length), the
// language model, a bias
constexpr int kInMatch = 2 + kOrders, kInMatchLen = kInMatch + 1, kInLm = kInMatch + 2, kInBias = kInMatch + 3;
constexpr int kInputs = kInBias + 1;

struct Mixer {
  std::vector<int32_t> w;  // sets × kInputs, 1.0 = 65536
  int set = 0;
  int p = 2048;  // last output (12 bits)
  int dot = 0;   // last output (stretch)
  Mixer(int sets, const std::array<int32_t, kInputs>& init) : w(static_cast<size_t>(sets) * kInputs) {
    for (int s = 0; s < sets; ++s) std::copy(init.begin(), init.end(), w.begin() + s * kInputs);
  }
  int predict(const int* x, int s) {
    set = s;
    const int32_t* ws = w.data() + s * kInputs;
    int64_t sum = 0;
    for (int i = 0; i < kInputs; ++i) sum += static_cast<int64_t>(x[i]) * ws[i];
    dot = static_cast<int>(std::clamp<int64_t>(sum >> 16, -2047, 2047));
    p = squash(dot);
    return dot;
  }
  void update(const int* x, int y, int lr) {
    const int64_t err = static_cast<int64_t>((y << 12) - p) * lr;
    int32_t* ws = w.data() + set * kInputs;
    for (int i = 0; i < kInputs; ++i) {
      const int64_t nw = ws[i] + ((x[i] * err + 32768) >> 16);
      ws[i] = static_cast<int32_t>(std::clamp<int64_t>(nw, -(int64_t{1} << 22), int64_t{1} << 22));
    }
  }
};

// ---- adaptive probability map: 33 interpolated bins per context, 16-bit probabilities -----------------

struct Apm {
  std::vector<uint16_t> t;
  int index = 0;
  explicit Apm(int contexts) : t(static_cast<size_t>(contexts) * 33) {
    for (int c = 0; c < contexts; ++c)
      for (int j = 0; j < 33; ++j) t[c * 33 + j] = static_cast<uint16_t>(squash((j - 16) * 128) * 16);
  }
  int pp(int p12, int ctx) {  // returns 16 bits
    const int s = stretch(p12) + 2048;  // 1 .. 4095
    const int lo = s >> 7, w = s & 127;
    const int base = ctx * 33 + lo;
    index = base + (w >> 6);
    return (t[base] * (128 - w) + t[base + 1] * w) >> 7;
  }
  void update(int y) {
    const int target = y ? 65535 : 0;
    t[index] = static_cast<uint16_t>(t[index] + ((target - t[index]) >> 6));
  }
};

constexpr uint32_t kLimitLow = 255, kLimitHashed = 60, kLimitMatch = 1023;

struct StreamState {
  std::vector<uint8_t> hist;
  uint32_t c4 = 0, c8 = 0;
  uint64_t word = 0, prev_word = 0;
  uint64_t ctx[kOrders] = {};
  uint32_t mlen = 0;  // current match length (0 = none)
  uint32_t mstream = 0;
  uint64_t mpos = 0;  // position of the predicted byte in stream mstream's history
};

int lr_at(uint64_t bytes) { return 6 + static_cast<int>((int64_t{80} << 14) / ((int64_t{1} << 14) + static_cast<int64_t>(bytes))); }

}  // namespace

int mixer_table_bits(uint64_t n_bytes) {
  int bits = kMinTableBits;
  while (bits < kMaxTableBits && (uint64_t{1} << bits) < 4 * n_bytes) ++bits;
  return bits;
}

struct ContextMixer::State {
  int table_bits, match_bits;
  bool shadow;
  std::vector<StreamState> streams;
  std::vector<Bucket> buckets;
  std::vector<uint32_t> o0, o1;  // 256, 65536
  std::vector<uint32_t> match_sm;  // 64
  std::vector<uint64_t> match_table;
  Mixer m1, m2, s1, s2;  // mixed; shadow (no LM)
  Apm a1, a2, sa1, sa2;
  State(const std::vector<uint64_t>& stream_bytes, int tb, bool sh)
      : table_bits(tb), match_bits(tb), shadow(sh), streams(stream_bytes.size()),
        buckets(size_t{1} << tb), o0(256, kCounterInit), o1(65536, kCounterInit), match_sm(64, kCounterInit),
        match_table(size_t{1} << tb, 0),
        m1(256, lm_init()), m2(256, lm_init()), s1(sh ? 256 : 1, cm_init()), s2(sh ? 128 : 1, cm_init()),
        a1(256), a2(65536), sa1(sh ? 256 : 1), sa2(sh ? 65536 : 1) {
    for (auto& b : buckets) reset(b, 0);
    for (size_t s = 0; s < streams.size(); ++s) streams[s].hist.reserve(stream_bytes[s]);
  }
  static std::array<int32_t, kInputs> lm_init() {
    std::array<int32_t, kInputs> w{};
    w[kInLm] = 65536;  // the model at full weight from the start; the contexts start small
    for (int i = 0; i < kInLm; ++i) w[i] = 65536 * 15 / 100;
    return w;
  }
  static std::array<int32_t, kInputs> cm_init() {
    std::array<int32_t, kInputs> w{};
    for (int i = 0; i < kInLm; ++i) w[i] = 65536 / 5;
    return w;
  }
  static void reset(Bucket& b, uint16_t tag) {
    b.tag = tag;
    b.unused = 0;
    std::fill(std::begin(b.node), std::end(b.node), kCounterInit);
  }
  Bucket* find(uint64_t h, int* hits) {
    const size_t i = static_cast<size_t>(h >> (64 - table_bits));
    const uint16_t tag = static_cast<uint16_t>(h);
    Bucket* a = &buckets[i];
    Bucket* b = &buckets[i ^ 1];
    Bucket* hit = a->tag == tag ? a : b->tag == tag ? b : nullptr;
    if (hit != nullptr) {
      *hits += (hit->node[0] & 1023) != 0 ? 1 : 0;  // seen before in this context
      return hit;
    }
    Bucket* victim = (a->node[0] & 1023) <= (b->node[0] & 1023) ? a : b;
    reset(*victim, tag);
    return victim;
  }
  // Context hashes of stream s at a byte boundary.
  void byte_contexts(StreamState& t) {
    const uint64_t c4 = t.c4, c8 = t.c8;
    t.ctx[0] = mix64((c4 & 0xffff) | (uint64_t{2} << 56));
    t.ctx[1] = mix64((c4 & 0xffffff) | (uint64_t{3} << 56));
    t.ctx[2] = mix64(c4 | (uint64_t{4} << 56));
    t.ctx[3] = mix64((c4 | ((c8 & 0xffff) << 32)) | (uint64_t{6} << 56));
    t.ctx[4] = mix64(t.word * 0x2545F4914F6CDD1Dull + t.prev_word * 0x9E3779B97F4A7C15ull + (uint64_t{7} << 56));
    t.ctx[5] = mix64((c4 & 0xffff00) | (uint64_t{8} << 56));                                   // bytes 2-3 back
    t.ctx[6] = mix64((c4 & 0xff00ff00) | ((t.hist.size() & 3) << 40) | (uint64_t{9} << 56));  // bytes 2, 4 back, position mod 4
  }
  void end_byte(int64_t s, uint8_t byte) {
    StreamState& t = streams[s];
    t.hist.push_back(byte);
    t.c8 = (t.c8 << 8) | (t.c4 >> 24);
    t.c4 = (t.c4 << 8) | byte;
    if ((byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z')) {
      t.word = (t.word + static_cast<uint64_t>(byte | 32) + 1) * 0x100000001B3ull;
    } else if (t.word != 0) {
      t.prev_word = t.word;
      t.word = 0;
    }
    // match model: extend, or look the context up; then index this position
    if (t.mlen > 0) {
      ++t.mpos;
      t.mlen = std::min<uint32_t>(t.mlen + 1, 65535);
      if (t.mpos >= streams[t.mstream].hist.size()) t.mlen = 0;  // the other stream has not got there yet
    }
    const size_t n = t.hist.size();
    if (n >= static_cast<size_t>(kMinMatch)) {
      const uint64_t key = mix64((static_cast<uint64_t>(t.c4) | (static_cast<uint64_t>(t.c8 & 0xffff) << 32)) + 0x51);
      const size_t h = static_cast<size_t>(key >> (64 - match_bits));
      if (t.mlen == 0 && match_table[h] != 0) {
        const uint64_t e = match_table[h];
        const uint32_t ms = static_cast<uint32_t>(e >> 40);
        const uint64_t mp = (e & ((uint64_t{1} << 40) - 1)) - 1;
        const auto& other = streams[ms].hist;
        if (mp < other.size()) {
          uint32_t k = 0;
          while (k < 32 && k < mp && k < n && other[mp - 1 - k] == t.hist[n - 1 - k]) ++k;
          if (k >= static_cast<uint32_t>(kMinMatch)) {
            t.mlen = k;
            t.mstream = ms;
            t.mpos = mp;
          }
        }
      }
      match_table[h] = (static_cast<uint64_t>(s) << 40) | (n + 1);
    }
    byte_contexts(t);
  }
};

ContextMixer::ContextMixer(const std::vector<uint64_t>& stream_bytes, int table_bits, bool shadow) {
  CCC_CHECK(table_bits >= kMinTableBits && table_bits <= kMaxTableBits, "context mixer: table bits ", table_bits,
            " outside [", kMinTableBits, ", ", kMaxTableBits, "]");
  CCC_CHECK(!stream_bytes.empty() && stream_bytes.size() < (size_t{1} << 24), "context mixer: bad stream count");
  st_ = std::make_unique<State>(stream_bytes, table_bits, shadow);
  for (auto& t : st_->streams) st_->byte_contexts(t);
}

ContextMixer::~ContextMixer() = default;

uint64_t ContextMixer::memory_bytes() const {
  uint64_t n = st_->buckets.size() * sizeof(Bucket) + (st_->o0.size() + st_->o1.size()) * 4 +
               st_->match_table.size() * 8 + (st_->m1.w.size() + st_->m2.w.size() + st_->s1.w.size() + st_->s2.w.size()) * 4 +
               (st_->a1.t.size() + st_->a2.t.size() + st_->sa1.t.size() + st_->sa2.t.size()) * 2;
  for (const auto& t : st_->streams) n += t.hist.capacity();
  return n;
}

template <typename CodeBit>
uint8_t ContextMixer::code_byte(int64_t s, const uint64_t* cdf, uint64_t total, int known, CodeBit&& code_bit) {
  State& S = *st_;
  StreamState& t = S.streams[s];
  const int lr = lr_at(stats_.bytes);
  const int c1 = static_cast<int>(t.c4 & 0xff);
  Bucket* bk[kOrders] = {};
  int c0 = 1;  // partial byte with a leading 1
  int hits = 0;
  int x[kInputs] = {}, xs[kInputs] = {};
  uint32_t* slot[kOrders + 2];
  for (int k = 0; k < 8; ++k) {
    if (k == 0 || k == 4) {
      hits = 0;
      for (int o = 0; o < kOrders; ++o) bk[o] = S.find(mix64(t.ctx[o] + static_cast<uint64_t>(c0) * 0xD6E8FEB86659FD93ull), &hits);
      hits = std::min(hits, 3);  // of the 7 hashed contexts: 0, 1, 2, 3+ seen before
    }
    // node index inside a bucket: the nibble's partial bits with a leading 1, minus 1
    const int nib = k < 4 ? c0 : ((1 << (k - 4)) | (c0 & ((1 << (k - 4)) - 1)));
    slot[0] = &S.o0[c0];
    slot[1] = &S.o1[(c1 << 8) | c0];
    for (int o = 0; o < kOrders; ++o) slot[2 + o] = &bk[o]->node[nib - 1];
    for (int i = 0; i < kOrders + 2; ++i) x[i] = stretch(counter_p(*slot[i]));
    // match model
    int ebit = -1;
    int msel = 0;
    uint32_t* msm = nullptr;
    if (t.mlen > 0) {
      const int eb = S.streams[t.mstream].hist[t.mpos];
      if (((eb | 256) >> (8 - k)) == c0) {
        ebit = (eb >> (7 - k)) & 1;
        const int lb = static_cast<int>(std::min<uint32_t>(t.mlen, 31));
        msm = &S.match_sm[lb * 2 + ebit];
        msel = t.mlen < 16 ? 1 : t.mlen < 32 ? 2 : 3;
      } else {
        t.mlen = 0;
      }
    }
    x[kInMatch] = msm != nullptr ? stretch(counter_p(*msm)) : 0;
    x[kInMatchLen] = ebit < 0 ? 0 : (ebit ? 1 : -1) * static_cast<int>(std::min<uint32_t>(t.mlen, 32)) * 32;
    // the language model: p(bit = 1 | earlier bits) from its CDF over the byte's subtree
    int lm = 0;
    if (cdf != nullptr) {
      const int size = 256 >> k;
      const int lo = (c0 - (1 << k)) << (8 - k);
      const uint64_t n0 = cdf[lo + size / 2] - cdf[lo], n1 = cdf[lo + size] - cdf[lo + size / 2];
      const int p = static_cast<int>(std::clamp<uint64_t>((n1 << 12) / (n0 + n1), 1, 4095));
      lm = stretch(p);
    }
    x[kInLm] = lm;
    x[kInBias] = 256;
    const int d1 = S.m1.predict(x, c0);
    const int d2 = S.m2.predict(x, (((lm + 2048) >> 8) * 4 + msel) * 4 + hits);
    const int pm = squash((d1 + d2) >> 1);
    const int p16 = std::clamp((pm * 16 + S.a1.pp(pm, c0) + 2 * S.a2.pp(pm, c0 | (c1 << 8)) + 2) >> 2, 32, 65536 - 32);
    int ps16 = 0;
    if (S.shadow) {
      std::copy(x, x + kInputs, xs);
      xs[kInLm] = 0;
      const int e1 = S.s1.predict(xs, c0);
      const int e2 = S.s2.predict(xs, (msel * 4 + hits) * 8 + k);
      const int ps = squash((e1 + e2) >> 1);
      ps16 = std::clamp((ps * 16 + S.sa1.pp(ps, c0) + 2 * S.sa2.pp(ps, c0 | (c1 << 8)) + 2) >> 2, 32, 65536 - 32);
    }
    const int y = code_bit(p16, known < 0 ? -1 : (known >> (7 - k)) & 1);
    stats_.mix_bits -= std::log2((y ? p16 : 65536 - p16) / 65536.0);
    // learn
    counter_update(*slot[0], y, kLimitLow);
    counter_update(*slot[1], y, kLimitLow);
    for (int o = 0; o < kOrders; ++o) counter_update(*slot[2 + o], y, kLimitHashed);
    if (msm != nullptr) counter_update(*msm, y, kLimitMatch);
    if (ebit >= 0 && ebit != y) t.mlen = 0;
    S.m1.update(x, y, lr);
    S.m2.update(x, y, lr);
    S.a1.update(y);
    S.a2.update(y);
    if (S.shadow) {
      stats_.cm_bits -= std::log2((y ? ps16 : 65536 - ps16) / 65536.0);
      S.s1.update(xs, y, lr);
      S.s2.update(xs, y, lr);
      S.sa1.update(y);
      S.sa2.update(y);
    }
    c0 = (c0 << 1) | y;
  }
  const uint8_t byte = static_cast<uint8_t>(c0 & 255);
  if (cdf != nullptr) stats_.lm_bits -= std::log2(static_cast<double>(cdf[byte + 1] - cdf[byte]) / static_cast<double>(total));
  ++stats_.bytes;
  S.end_byte(s, byte);
  return byte;
}

void ContextMixer::encode(ArithmeticEncoder& enc, int64_t s, const uint64_t* cdf, uint64_t total, uint8_t byte) {
  code_byte(s, cdf, total, byte, [&](int p16, int bit) {
    if (bit) enc.encode(0, static_cast<uint64_t>(p16), 65536);
    else enc.encode(static_cast<uint64_t>(p16), 65536, 65536);
    return bit;
  });
}

uint8_t ContextMixer::decode(ArithmeticDecoder& dec, int64_t s, const uint64_t* cdf, uint64_t total) {
  return code_byte(s, cdf, total, -1, [&](int p16, int) {
    const int bit = dec.target(65536) < static_cast<uint64_t>(p16) ? 1 : 0;
    if (bit) dec.consume(0, static_cast<uint64_t>(p16), 65536);
    else dec.consume(static_cast<uint64_t>(p16), 65536, 65536);
    return bit;
  });
}

std::string cm_encode(std::string_view input, int table_bits, MixerStats* stats) {
  ContextMixer cm({input.size()}, table_bits, false);
  ArithmeticEncoder enc;
  for (char c : input) cm.encode(enc, 0, nullptr, 0, static_cast<uint8_t>(c));
  if (stats != nullptr) *stats = cm.stats();
  return enc.finish();
}

std::string cm_decode(std::string_view payload, uint64_t n, int table_bits, const std::string& name) {
  ContextMixer cm({n}, table_bits, false);
  ArithmeticDecoder dec(payload);
  std::string out;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    out.push_back(static_cast<char>(cm.decode(dec, 0, nullptr, 0)));
    CCC_CHECK(!dec.overrun(), name, ": the context-model payload is corrupt (exhausted)");
  }
  return out;
}

}  // namespace ccc::compress
