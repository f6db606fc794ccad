#include "compress/lm_codec.h"

#include <algorithm>
#include <cstring>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <mutex>
#include <thread>

#include <torch/torch.h>
#include <torch/version.h>

#include "compress/arithmetic_coder.h"
#include "compress/context_mixer.h"
#include "model/base/util.h"
#include "model/kernels/blas_threads.h"
#include "model/kernels/decode_attention.h"
#include "model/kernels/decode_gemm.h"
#include "model/kernels/elementwise.h"
#include "model/kernels/parallel.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/core/score.h"
#include "model/scoring/cost_model.h"

namespace ccc::compress {

namespace {

using model::codec_cache_row_bytes;
using model::resolve_streams;
using model::segment_tokens;

// Pins single-threaded kernels for the lifetime of the object, restoring the previous settings after.
class SingleThreadedKernels {
 public:
  SingleThreadedKernels() : torch_threads_(torch::get_num_threads()), blas_(1) { torch::set_num_threads(1); }
  ~SingleThreadedKernels() { torch::set_num_threads(torch_threads_); }

 private:
  int torch_threads_;
  model::ScopedBlasThreads blas_;
  model::ScopedDecodeThreads decode_{1};
};

// Byte length of every token id's text (RunInfo byte offsets on the coding path, encoder and decoder alike).
std::vector<int64_t> token_lengths(const model::Tokenizer& tok, int64_t vocab) {
  std::vector<int64_t> len(vocab, 0);
  for (int64_t id = 0; id < vocab && id < tok.vocab_size(); ++id) len[id] = static_cast<int64_t>(tok.token_bytes(id).size());
  return len;
}

std::vector<std::pair<int64_t, int64_t>> group_ranges(int64_t streams, int64_t groups) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t g = 0; g < groups; ++g) out.emplace_back(g * streams / groups, (g + 1) * streams / groups);
  return out;
}

// The model side of one group: feeds one token per row per step through the KV cache and returns the
// CDF of each row's next token. Rolling policy: a rolling cache of W positions. Strided policy: when
// the context would exceed W-1 tokens, the cache restarts with the last W-1-S fed tokens plus the
// current one (the windows of score_bits).
class GroupModel {
 public:
  GroupModel(model::Transformer& m, int64_t rows, const Header& h, model::HookSet* hooks)
      : m_(m), rows_(rows), W_(h.window), keep_(h.policy == WindowKind::kStrided ? h.window - 1 - h.stride : 0),
        strided_(h.policy == WindowKind::kStrided), total_(uint64_t{1} << h.total_log2),
        cache_(m->make_cache(rows, h.window, /*rolling=*/!strided_, torch::kHalf)), hooks_(hooks) {
    if (strided_) {
      history_.resize(rows);
      offset_history_.resize(rows);
    }
  }

  int64_t vocab() const { return m_->config().d_vocab_out; }
  /// Keep each row's distribution of the last step for bits_of (capture runs only).
  void keep_distributions(bool on) { keep_dist_ = on; }
  /// −log2 p(token) of row r under the last step's fp32 distribution (needs keep_distributions).
  double bits_of(int64_t r, int64_t token) const {
    const int64_t V = vocab();
    return log2_sum_[r] - std::log2(static_cast<double>(kept_[r * V + token]));
  }

  // Feeds `cur` (one token per row, at stream position `pos`); cdfs receives rows x (vocab + 1) cumulative
  // frequencies. `stream0`, `live` and `offsets` (byte offset of each row's token) only feed the hooks' RunInfo.
  void step(const std::vector<int64_t>& cur, int64_t pos, int64_t stream0, const std::vector<uint8_t>& live,
            const std::vector<int64_t>& offsets, std::vector<uint64_t>& cdfs) {
    torch::Tensor input;
    int64_t n = 1;  // tokens fed per row this step
    if (strided_) {
      for (int64_t r = 0; r < rows_; ++r) {
        history_[r].push_back(cur[r]);
        offset_history_[r].push_back(offsets[r]);
      }
      if (cache_.len == W_ - 1) {
        cache_.reset();
        n = keep_ + 1;
        input = torch::empty({rows_, n}, torch::kInt64);
        auto acc = input.accessor<int64_t, 2>();
        for (int64_t r = 0; r < rows_; ++r)
          for (int64_t j = 0; j < n; ++j) acc[r][j] = history_[r][history_[r].size() - n + j];
      }
      // histories only need the last keep_ tokens
      if (history_[0].size() > static_cast<size_t>(4 * W_)) {
        for (auto& h : history_) h.erase(h.begin(), h.end() - keep_);
        for (auto& h : offset_history_) h.erase(h.begin(), h.end() - keep_);
      }
    }
    if (!input.defined()) input = torch::from_blob(const_cast<int64_t*>(cur.data()), {rows_, 1}, torch::kInt64).clone();
    model::RunInfo info;
    if (hooks_ != nullptr) {
      info = model::RunInfo::empty(rows_, n);
      for (int64_t r = 0; r < rows_; ++r) {
        info.stream[r] = stream0 + r;
        info.live[r] = live[r];
        for (int64_t j = 0; j < n; ++j) {
          info.position[r * n + j] = live[r] ? pos - (n - 1) + j : -1;
          info.byte_offset[r * n + j] =
              !live[r] ? -1 : (n == 1 ? offsets[r] : offset_history_[r][offset_history_[r].size() - n + j]);
        }
      }
    }
    auto logits = m_->forward(input, {hooks_, &cache_, hooks_ != nullptr ? &info : nullptr})
                      .select(1, -1)
                      .contiguous();  // [rows, V] fp32
    const int64_t V = logits.size(1);
    const float* p = logits.data_ptr<float>();
    constexpr int64_t kRowBlock = 4;  // rows whose CDFs are built side by side (cdf_from_probs_rows)
    num_.resize(V);
    probs_.resize(kRowBlock * V);
    cdfs.resize(rows_ * (V + 1));
    if (keep_dist_) {
      kept_.resize(rows_ * V);
      log2_sum_.resize(rows_);
    }
    for (int64_t r0 = 0; r0 < rows_; r0 += kRowBlock) {
      const int64_t nb = std::min(kRowBlock, rows_ - r0);
      for (int64_t r = r0; r < r0 + nb; ++r) {
        // exp(logit − max) with the decode kernels' exp (fixed operations on every machine of a path)
        model::softmax_numerators(p + r * V, V, num_.data());
        double* q = probs_.data() + (r - r0) * V;
        for (int64_t i = 0; i < V; ++i) q[i] = num_[i];
        if (keep_dist_) {
          double sum = 0;
          for (int64_t i = 0; i < V; ++i) sum += num_[i];
          log2_sum_[r] = std::log2(sum);
          std::copy(num_.begin(), num_.end(), kept_.begin() + r * V);
        }
      }
      cdf_from_probs_rows(probs_.data(), nb, V, total_, cdfs.data() + r0 * (V + 1));  // each row as cdf_from_probs
    }
  }

 private:
  model::Transformer& m_;
  int64_t rows_, W_, keep_;
  bool strided_;
  uint64_t total_;
  model::KVCache cache_;
  model::HookSet* hooks_;
  std::vector<std::vector<int64_t>> history_, offset_history_;
  std::vector<float> num_;
  std::vector<double> probs_;
  bool keep_dist_ = false;
  std::vector<float> kept_;       // rows x V numerators of the last step (capture)
  std::vector<double> log2_sum_;  // rows
};

void run_groups(int64_t n_groups, int64_t threads, const std::function<void(int64_t)>& fn) {
  if (threads <= 0) threads = static_cast<int64_t>(available_cores());
  threads = std::min(threads, n_groups);
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto worker = [&] {
    torch::InferenceMode guard;
    for (int64_t g; (g = next++) < n_groups;) {
      try {
        fn(g);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// One group's lockstep loop, shared by encoder and decoder so both make exactly the same model calls:
// feed(i) feeds every row's current token (step i) and leaves each row's CDF of its next token; then
// every row that still codes at step i codes its token (coded), the others are padded with BOS (pad).
// Group g holds streams [s0, s0 + rows); hooks (optional) see every model call with the group's RunInfo.
class GroupLoop {
 public:
  GroupLoop(model::LoadedModel& m, const Header& h, int64_t g, int64_t s0, std::vector<uint64_t> n_tokens,
            const CodecOptions& opt)
      : m_(m), h_(h), g_(g), s0_(s0), n_tokens_(std::move(n_tokens)), opt_(opt),
        rows_(static_cast<int64_t>(n_tokens_.size())),
        extra_(opt.on_fed || opt.on_coded ? 1 : 0),  // capture: one more fed position per stream (its last token)
        steps_(*std::max_element(n_tokens_.begin(), n_tokens_.end()) + extra_),
        hooks_(opt.hooks ? opt.hooks(g) : nullptr), track_(hooks_ != nullptr || extra_ > 0),
        gm_(m.model, rows_, h, hooks_), cur_(rows_, m.config.bos_id), offset_(rows_, -1), next_(rows_, 0),
        start_(rows_, 0), live_(rows_, 1) {
    gm_.keep_distributions(static_cast<bool>(opt.on_coded));
    if (track_) {  // byte offsets of the fed tokens (RunInfo): running sums of token lengths from each segment's start
      lengths_ = token_lengths(*m.tokenizer, gm_.vocab());
      for (int64_t r = 0; r < rows_; ++r) {
        start_[r] = static_cast<int64_t>(segment_range(h.original_bytes, h.streams.size(), s0 + r).first);
        next_[r] = start_[r] - m.tokenizer->prefix_bytes();
      }
    }
  }
  uint64_t steps() const { return steps_; }
  int64_t rows() const { return rows_; }
  int64_t vocab() const { return gm_.vocab(); }
  int64_t stream0() const { return s0_; }
  bool codes(int64_t r, uint64_t i) const { return i < n_tokens_[r]; }
  const uint64_t* cdf(int64_t r) const { return cdfs_.data() + r * (gm_.vocab() + 1); }

  void feed(uint64_t i) {
    if (track_)
      for (int64_t r = 0; r < rows_; ++r) live_[r] = i < n_tokens_[r] + extra_ ? 1 : 0;
    gm_.step(cur_, static_cast<int64_t>(i), s0_, live_, offset_, cdfs_);
    if (opt_.on_fed) opt_.on_fed(g_, s0_, static_cast<int64_t>(i), cur_, live_, offset_);
  }
  void coded(int64_t r, uint64_t i, int64_t token) {
    cur_[r] = token;
    if (opt_.on_coded) opt_.on_coded(g_, s0_ + r, static_cast<int64_t>(i) + 1, token, gm_.bits_of(r, token));
    if (track_) {
      offset_[r] = std::max(start_[r], next_[r]);
      next_[r] += lengths_[token];
    }
  }
  void pad(int64_t r) {
    cur_[r] = m_.config.bos_id;
    offset_[r] = -1;
  }

 private:
  model::LoadedModel& m_;
  const Header& h_;
  int64_t g_, s0_;
  std::vector<uint64_t> n_tokens_;
  const CodecOptions& opt_;
  int64_t rows_;
  uint64_t extra_, steps_;
  model::HookSet* hooks_;
  bool track_;
  GroupModel gm_;
  std::vector<int64_t> cur_, lengths_, offset_, next_, start_;
  std::vector<uint8_t> live_;
  std::vector<uint64_t> cdfs_;
};

// Pure mode: one group's whole loop on one thread; `code(r, cdf, V)` codes row r's next token (encode it
// or decode it, rows in order into the group's one arithmetic code) and returns it.
template <typename Code>
void code_group(model::LoadedModel& m, const Header& h, int64_t g, int64_t s0, const std::vector<uint64_t>& n_tokens,
                std::atomic<uint64_t>& done, uint64_t total_tokens, const CodecOptions& opt, Code&& code) {
  GroupLoop loop(m, h, g, s0, n_tokens, opt);
  const int64_t V = loop.vocab();
  for (uint64_t i = 0; i < loop.steps(); ++i) {
    loop.feed(i);
    for (int64_t r = 0; r < loop.rows(); ++r) {
      if (loop.codes(r, i)) {
        loop.coded(r, i, code(r, loop.cdf(r), V));
        ++done;
      } else {
        loop.pad(r);
      }
    }
    if (opt.progress && (i % 64 == 0 || i + 1 == loop.steps())) opt.progress(done.load(), total_tokens);
  }
}

// Runs fn(0 .. tasks − 1) on a fixed set of threads, once per call to run(), returning when all are done
// (the per-step barrier of mixed mode: every group's model step in parallel, then the mixer in order).
class StepPool {
 public:
  StepPool(int64_t threads, int64_t tasks) : tasks_(tasks) {
    if (threads <= 0) threads = static_cast<int64_t>(available_cores());
    threads = std::min(threads, tasks);
    for (int64_t t = 1; t < threads; ++t) workers_.emplace_back([this] { loop(); });
  }
  ~StepPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++gen_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void run(const std::function<void(int64_t)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_.store(&fn);
      pending_ = tasks_;
      next_.store(0);
      ++gen_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_ == 0; });
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  void work() {
    for (;;) {
      const int64_t g = next_.fetch_add(1);
      if (g >= tasks_) return;
      try {
        (*fn_.load())(g);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_all();
    }
  }
  void loop() {
    torch::InferenceMode guard;
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
      }
      work();
    }
  }
  int64_t tasks_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> next_{0};
  int64_t pending_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// Mixed mode: every group's model steps in parallel, then the frame's one mixer codes step i of every
// stream in order (stream 0, 1, …): `code(s, cdf, V)` codes stream s's next byte and returns it.
template <typename Code>
void code_mixed(model::LoadedModel& m, const Header& h, std::atomic<uint64_t>& done, uint64_t total_tokens,
                const CodecOptions& opt, Code&& code) {
  torch::InferenceMode guard;  // this thread steps groups too (as run_groups' workers)
  const int64_t B = static_cast<int64_t>(h.streams.size());
  const auto ranges = group_ranges(B, h.n_groups);
  std::vector<std::unique_ptr<GroupLoop>> loops;
  uint64_t steps = 0;
  for (int64_t g = 0; g < static_cast<int64_t>(h.n_groups); ++g) {
    std::vector<uint64_t> n_tokens;
    for (int64_t s = ranges[g].first; s < ranges[g].second; ++s) n_tokens.push_back(h.streams[s].n_tokens);
    loops.push_back(std::make_unique<GroupLoop>(m, h, g, ranges[g].first, std::move(n_tokens), opt));
    steps = std::max(steps, loops.back()->steps());
  }
  StepPool pool(opt.threads, h.n_groups);
  for (uint64_t i = 0; i < steps; ++i) {
    pool.run([&](int64_t g) {
      if (i < loops[g]->steps()) loops[g]->feed(i);
    });
    for (auto& loop : loops) {
      if (i >= loop->steps()) continue;
      for (int64_t r = 0; r < loop->rows(); ++r) {
        if (loop->codes(r, i)) {
          loop->coded(r, i, code(loop->stream0() + r, loop->cdf(r), loop->vocab()));
          ++done;
        } else {
          loop->pad(r);
        }
      }
    }
    if (opt.progress && (i % 64 == 0 || i + 1 == steps)) opt.progress(done.load(), total_tokens);
  }
}

// The window policy of a codec run (model::stream_policy) in the header's fields.
void resolve_policy(const model::ModelConfig& cfg, const CodecOptions& opt, Header& h) {
  const auto p = model::stream_policy(cfg, opt);
  h.policy = p.rolling ? WindowKind::kRolling : WindowKind::kStrided;
  h.window = static_cast<uint32_t>(p.window);
  h.stride = static_cast<uint32_t>(p.stride);
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string runtime_id() {
  return "ccc-codec-3 (decode step: raw kernels, row norms, 8-slot scores, fp32 exp CDF); gcc " __VERSION__ "; libtorch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
         std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH) + "; " + model::blas_info() +
         "; attention " + model::decode_attention_path(8) + "/" + model::decode_attention_path(1) + "; gemm " +
         model::packed_linear_path();
}

bool mixed_capable(const model::LoadedModel& m) {
  return m.tokenizer->kind() == "byte" && m.config.d_vocab_out >= 256 && m.config.bos_id >= 256;
}

int64_t auto_groups(const model::ModelConfig& cfg, int64_t window, int64_t streams) {
  int64_t G = std::min(kDefaultGroups, streams);
  const int64_t fit = kGroupCacheBytes / std::max<int64_t>(1, codec_cache_row_bytes(cfg, window));
  if (fit >= kMinCacheRows) G = std::max(G, (streams + fit - 1) / fit);
  const int64_t cap = static_cast<int64_t>(kMaxStreamsPerGroup);
  return std::min(std::max(G, (streams + cap - 1) / cap), streams);
}

std::string lm_compress(model::LoadedModel& m, std::string_view input, const CodecOptions& opt) {
  CCC_CHECK(m.tokenizer->lossless(), "compress: tokenizer ", m.tokenizer->kind(), " is not lossless");
  CCC_CHECK(input.size() <= kMaxFrameBytes, "compress: ", input.size(), " bytes is more than one frame holds (",
            kMaxFrameBytes, "); compress larger inputs frame by frame (lm_compress_frames, or the ccc command)");
  const auto& cfg = m.config;
  const uint64_t n = input.size();
  const int64_t B = resolve_streams(n, opt.streams);
  Header h;
  resolve_policy(cfg, opt, h);
  const int64_t G = opt.groups > 0 ? std::min(opt.groups, B) : auto_groups(cfg, h.window, B);  // machine-independent
  const auto per_group = [&] { return (B + G - 1) / G; };
  CCC_CHECK(per_group() <= static_cast<int64_t>(kMaxStreamsPerGroup), "compress: ", B, " streams in ", G, " groups is more than ",
            kMaxStreamsPerGroup, " streams per group; use more --groups");
  h.fingerprint = fingerprint_from_hex(m.fingerprint);
  h.tokenizer_kind = m.tokenizer->kind();
  {  // the model's name, not a path of this machine (a symlink such as data/models/default resolved)
    std::error_code ec;
    auto p = std::filesystem::weakly_canonical(std::filesystem::path(m.source), ec);
    h.model_hint = (ec ? std::filesystem::path(m.source) : p).filename().string();
  }
  h.runtime_hash = xxh64(runtime_id());
  h.original_bytes = n;
  h.checksum = xxh64(input);
  h.n_groups = static_cast<uint32_t>(G);
  h.total_log2 = opt.total_log2;
  CCC_CHECK(h.total_log2 >= 24 && h.total_log2 <= 31, "compress: cdf total must be 2^24 .. 2^31");
  h.mode = !opt.pure && mixed_capable(m) ? FrameMode::kMixed : FrameMode::kPure;
  if (h.mode == FrameMode::kMixed) {
    h.mixer_version = kMixerVersion;
    h.table_bits = static_cast<uint8_t>(mixer_table_bits(n));
  } else {
    h.group_raw.assign(G, 0);
  }

  const auto segs = segment_tokens(m, input, B);
  uint64_t total_tokens = 0;
  for (int64_t s = 0; s < B; ++s) {
    const auto [a, b] = segment_range(n, B, s);
    const uint64_t n_tok = segs[s].size() - 1;
    for (size_t i = 1; i < segs[s].size(); ++i)
      CCC_CHECK(segs[s][i] >= 0 && segs[s][i] < cfg.d_vocab_out, "compress: token ", segs[s][i],
                " cannot be predicted by the model (d_vocab_out ", cfg.d_vocab_out, ")");
    CCC_CHECK(n_tok <= b - a + kTokenSlack, "compress: the ", m.tokenizer->kind(), " tokenizer produced ", n_tok,
              " tokens for the ", b - a, " bytes of stream ", s, " (more than one token per byte plus ", kTokenSlack, ")");
    // Lossless only if the tokens decode to exactly these bytes (a tokenizer with duplicate ids would not):
    // refuse here, before anything is written, rather than leave a container that cannot be restored.
    const std::string back = m.tokenizer->decode(std::vector<int64_t>(segs[s].begin() + 1, segs[s].end()));
    if (back != std::string_view(input).substr(a, b - a)) {
      size_t k = 0;
      while (k < back.size() && k < b - a && back[k] == input[a + k]) ++k;
      CCC_FAIL("compress: the ", m.tokenizer->kind(), " tokenizer does not round-trip stream ", s, " (bytes ", a, "..", b,
               "): its tokens decode to ", back.size(), " bytes that differ from the input at byte ", a + k,
               "; nothing written (check the tokenizer files for duplicate or inconsistent entries)");
    }
    total_tokens += n_tok;
    h.streams.push_back({b - a, n_tok});
  }
  std::atomic<uint64_t> done{0};
  SingleThreadedKernels pin;
  std::string out;
  if (h.mode == FrameMode::kMixed) {
    std::vector<uint64_t> stream_bytes;
    for (const auto& st : h.streams) stream_bytes.push_back(st.n_bytes);
    ContextMixer cm(stream_bytes, h.table_bits, opt.stats != nullptr && opt.stats->shadow);
    ArithmeticEncoder enc;
    std::vector<uint64_t> next(B, 1);
    code_mixed(m, h, done, total_tokens, opt, [&](int64_t s, const uint64_t* cdf, int64_t V) {
      const int64_t t = segs[s][next[s]++];
      cm.encode(enc, s, cdf, cdf[V], static_cast<uint8_t>(t));
      return t;
    });
    const std::string payload = enc.finish();
    h.group_bytes = {payload.size()};
    out = serialize_header(h) + payload;
    if (opt.stats != nullptr) {
      opt.stats->lm_bits += cm.stats().lm_bits;
      opt.stats->cm_bits += cm.stats().cm_bits;
      opt.stats->mix_bits += cm.stats().mix_bits;
      opt.stats->mixed_bytes += n;
      opt.stats->mixer_memory = std::max(opt.stats->mixer_memory, cm.memory_bytes());
    }
  } else {
    std::vector<std::string> payloads(G);
    std::vector<double> lm_bits(G, 0.0);
    const auto ranges = group_ranges(B, G);
    // under mpirun with distribute: this rank codes groups g ≡ rank (mod N), then all payloads are gathered
    const bool spread = opt.distribute && dist::size() > 1 && !dist::in_map();
    std::vector<int64_t> mine;
    for (int64_t g = 0; g < G; ++g)
      if (!spread || dist::owner(g) == dist::rank()) mine.push_back(g);
    run_groups(static_cast<int64_t>(mine.size()), opt.threads, [&](int64_t k) {
      const int64_t g = mine[static_cast<size_t>(k)];
      dist::fault_point("compress.group");
      const int64_t s0 = ranges[g].first, s1 = ranges[g].second;
      std::vector<uint64_t> n_tokens;
      std::vector<uint64_t> next(s1 - s0, 1);
      for (int64_t s = s0; s < s1; ++s) n_tokens.push_back(segs[s].size() - 1);
      if (*std::max_element(n_tokens.begin(), n_tokens.end()) == 0) return;
      ArithmeticEncoder enc;
      code_group(m, h, g, s0, n_tokens, done, total_tokens, opt,
                 [&](int64_t r, const uint64_t* cdf, int64_t V) {
                   const int64_t t = segs[s0 + r][next[r]++];
                   enc.encode(cdf[t], cdf[t + 1], cdf[V]);
                   if (opt.stats != nullptr)
                     lm_bits[g] -= std::log2(static_cast<double>(cdf[t + 1] - cdf[t]) / static_cast<double>(cdf[V]));
                   return t;
                 });
      payloads[g] = enc.finish();
      // the floor (not with pure, the measurement): a group whose code is not smaller than its bytes is stored as they are
      if (opt.pure) return;
      const uint64_t bytes_in = segment_range(n, B, s1 - 1).second - segment_range(n, B, s0).first;
      if (payloads[g].size() >= bytes_in) {
        payloads[g] = std::string(input.substr(segment_range(n, B, s0).first, bytes_in));
        h.group_raw[g] = 1;
      }
    });
    if (spread) {  // every group's payload and bits (the raw flag is never set in pure mode)
      const auto all = dist::map(G, [&](int64_t g) {
        return std::string(reinterpret_cast<const char*>(&lm_bits[g]), sizeof(double)) + payloads[g];
      });
      for (int64_t g = 0; g < G; ++g) {
        std::memcpy(&lm_bits[g], all[g].data(), sizeof(double));
        payloads[g] = all[g].substr(sizeof(double));
      }
    }
    for (const auto& p : payloads) h.group_bytes.push_back(p.size());
    out = serialize_header(h);
    for (const auto& p : payloads) out += p;
    if (opt.stats != nullptr) {
      for (double b : lm_bits) opt.stats->lm_bits += b;
      for (uint8_t r : h.group_raw) opt.stats->raw_groups += r;
    }
  }
  FrameMode chosen = h.mode;
  if (opt.stats != nullptr) {
    ++opt.stats->frames;
    opt.stats->model_frame_bytes += out.size();
  }
  // the context models alone (one stream, no model): what wins on data the model has no prior for
  if (!opt.pure && opt.context_frames) {
    Header c;
    c.mode = FrameMode::kContext;
    c.original_bytes = n;
    c.checksum = h.checksum;
    c.mixer_version = kMixerVersion;
    c.table_bits = static_cast<uint8_t>(mixer_table_bits(n));
    const std::string payload = cm_encode(input, c.table_bits);
    c.group_bytes = {payload.size()};
    std::string alt = serialize_header(c) + payload;
    if (opt.stats != nullptr) opt.stats->context_frame_bytes += alt.size();
    if (alt.size() < out.size()) {
      out = std::move(alt);
      chosen = FrameMode::kContext;
    }
  }
  // the floor of the whole frame: never more than its bytes plus a stored frame's header (not with pure:
  // its payload is the model's bits, whatever they come to)
  if (!opt.pure && out.size() >= stored_frame_size(n)) {
    out = stored_frame(input);
    chosen = FrameMode::kStored;
  }
  if (opt.stats != nullptr) {
    auto& st = *opt.stats;
    ++(chosen == FrameMode::kStored    ? st.stored_frames
       : chosen == FrameMode::kContext ? st.context_frames
       : chosen == FrameMode::kMixed   ? st.mixed_frames
                                       : st.pure_frames);
  }
  return out;
}

std::string lm_compress_frames(model::LoadedModel& m, std::string_view input, const CodecOptions& opt,
                               uint64_t frame_bytes) {
  CCC_CHECK(frame_bytes >= 1 && frame_bytes <= kMaxFrameBytes, "compress: frame size ", frame_bytes, " out of range");
  std::string out;
  uint64_t at = 0;
  do {
    const uint64_t n = std::min<uint64_t>(frame_bytes, input.size() - at);
    out += lm_compress(m, input.substr(at, n), opt);
    at += n;
  } while (at < input.size());
  return out;
}

std::string lm_decompress(model::LoadedModel& m, std::string_view container, const std::string& name,
                          const CodecOptions& opt) {
  std::string out;
  size_t at = 0;
  do {
    const std::string_view rest = container.substr(at);
    if (at > 0 && (rest.size() < 4 || std::memcmp(rest.data(), kMagic, 4) != 0))
      CCC_FAIL(name, ": ", rest.size(), " unexpected bytes after the payload");
    const uint64_t n = frame_size(rest, name);
    // a whole frame is decoded as it stands; a short one goes to the full parser for its precise error
    const std::string_view frame = n == 0 || n > rest.size() ? rest : rest.substr(0, n);
    out += lm_decompress_frame(m, frame, name, opt);
    at += frame.size();
  } while (at < container.size());
  return out;
}

std::string lm_decompress_frame(model::LoadedModel& m, std::string_view container, const std::string& name,
                                const CodecOptions& opt) {
  size_t offset = 0;
  const Header h = parse_container(container, name, &offset);
  if (h.mode == FrameMode::kStored || h.mode == FrameMode::kContext) {  // no model needed
    CCC_CHECK(h.mode == FrameMode::kStored || opt.max_tokens == 0 || h.original_bytes <= opt.max_tokens, name,
              ": declares ", h.original_bytes, " bytes, more than the limit of ", opt.max_tokens);
    std::string out;
    if (h.mode == FrameMode::kStored) {
      out = std::string(container.substr(offset));
    } else {
      CCC_CHECK(h.mixer_version == kMixerVersion, name, ": mixer version ", int(h.mixer_version),
                " is not supported (this ccc mixes with version ", int(kMixerVersion), ")");
      CCC_CHECK(h.table_bits >= kMinTableBits && h.table_bits <= kMaxTableBits, name,
                ": corrupt header (mixer table bits ", int(h.table_bits), ")");
      out = cm_decode(container.substr(offset), h.original_bytes, h.table_bits, name);
    }
    CCC_CHECK(xxh64(out) == h.checksum, name, ": a ", frame_mode_name(h.mode),
              " frame fails its checksum (corrupt); nothing written");
    return out;
  }
  const auto& cfg = m.config;
  CCC_CHECK(hex(h.fingerprint) == m.fingerprint, name, ": compressed with another model (fingerprint ",
            hex(h.fingerprint).substr(0, 16), "..., hint '", h.model_hint, "'); the loaded model ", m.source,
            " has fingerprint ", m.fingerprint.substr(0, 16), "...");
  CCC_CHECK(h.tokenizer_kind == m.tokenizer->kind(), name, ": tokenizer ", h.tokenizer_kind, " expected, model has ",
            m.tokenizer->kind());
  CCC_CHECK(h.window <= cfg.n_ctx, name, ": window ", h.window, " exceeds the model context ", cfg.n_ctx);
  CCC_CHECK(h.policy == WindowKind::kStrided || cfg.pos != model::PosKind::kLearned, name,
            ": rolling window policy with a learned-position model (corrupt header)");
  const int64_t B = static_cast<int64_t>(h.streams.size());
  uint64_t total_tokens = 0;
  for (const auto& s : h.streams) total_tokens += s.n_tokens;
  CCC_CHECK(opt.max_tokens == 0 || total_tokens <= opt.max_tokens, name, ": declares ", total_tokens,
            " tokens, more than the limit of ", opt.max_tokens);
  std::atomic<uint64_t> done{0};
  SingleThreadedKernels pin;
  std::vector<std::string> parts(B);
  if (h.mode == FrameMode::kMixed) {
    CCC_CHECK(mixed_capable(m), name, ": a mixed frame needs a byte-level model");
    CCC_CHECK(h.mixer_version == kMixerVersion, name, ": mixer version ", int(h.mixer_version),
              " is not supported (this ccc mixes with version ", int(kMixerVersion), ")");
    CCC_CHECK(h.table_bits >= kMinTableBits && h.table_bits <= kMaxTableBits, name, ": corrupt header (mixer table bits ",
              int(h.table_bits), ")");
    std::vector<uint64_t> stream_bytes;
    for (const auto& st : h.streams) {
      CCC_CHECK(st.n_tokens == st.n_bytes, name, ": corrupt stream table (a mixed frame codes one byte per token)");
      stream_bytes.push_back(st.n_bytes);
    }
    ContextMixer cm(stream_bytes, h.table_bits, false);
    ArithmeticDecoder dec(container.substr(offset, h.group_bytes[0]));
    code_mixed(m, h, done, total_tokens, opt, [&](int64_t s, const uint64_t* cdf, int64_t V) {
      const uint8_t byte = cm.decode(dec, s, cdf, cdf[V]);
      CCC_CHECK(!dec.overrun(), name, ": the mixed payload is corrupt (exhausted)");
      parts[s].push_back(static_cast<char>(byte));
      return static_cast<int64_t>(byte);
    });
  } else {
    std::vector<std::string_view> payloads;
    for (uint64_t g : h.group_bytes) {
      payloads.push_back(container.substr(offset, g));
      offset += g;
    }
    std::vector<std::vector<int64_t>> tokens(B);
    const auto ranges = group_ranges(B, h.n_groups);
    run_groups(h.n_groups, opt.threads, [&](int64_t g) {
      const int64_t s0 = ranges[g].first, s1 = ranges[g].second;
      if (!h.group_raw.empty() && h.group_raw[g]) {  // stored as they are (sizes checked by the parser)
        uint64_t at = 0;
        for (int64_t s = s0; s < s1; ++s) {
          parts[s] = std::string(payloads[g].substr(at, h.streams[s].n_bytes));
          at += h.streams[s].n_bytes;
        }
        return;
      }
      std::vector<uint64_t> n_tokens;
      for (int64_t s = s0; s < s1; ++s) n_tokens.push_back(h.streams[s].n_tokens);
      if (*std::max_element(n_tokens.begin(), n_tokens.end()) == 0) {
        CCC_CHECK(payloads[g].empty(), name, ": group ", g, " codes no tokens but has a payload (corrupt)");
        return;
      }
      ArithmeticDecoder dec(payloads[g]);
      code_group(m, h, g, s0, n_tokens, done, total_tokens, opt,
                 [&](int64_t r, const uint64_t* cdf, int64_t V) {
                   const uint64_t total = cdf[V];
                   const uint64_t t = dec.target(total);
                   const int64_t sym = std::upper_bound(cdf + 1, cdf + V + 1, t) - cdf - 1;  // first i: cdf[i+1] > t
                   dec.consume(cdf[sym], cdf[sym + 1], total);
                   CCC_CHECK(!dec.overrun(), name, ": group ", g, " is corrupt (payload exhausted)");
                   tokens[s0 + r].push_back(sym);
                   return sym;
                 });
      for (int64_t s = s0; s < s1; ++s) parts[s] = m.tokenizer->decode(tokens[s]);
    });
  }
  std::string out;
  out.reserve(h.original_bytes);
  for (int64_t s = 0; s < B; ++s) {
    CCC_CHECK(parts[s].size() == h.streams[s].n_bytes, name, ": stream ", s, " decoded to ", parts[s].size(),
              " bytes, expected ", h.streams[s].n_bytes, " (corrupt data, or a model/runtime that differs from the encoder's)");
    out += parts[s];
  }
  if (xxh64(out) != h.checksum) {
    const std::string here = runtime_id();
    CCC_FAIL(name, ": decoded data fails its checksum; nothing written. ",
             h.runtime_hash == xxh64(here)
                 ? std::string("The payload is corrupt.")
                 : "The encoder ran a different arithmetic path (runtime hash " + hex64(h.runtime_hash) +
                       "; this machine: " + hex64(xxh64(here)) + " = '" + here + "').");
  }
  return out;
}

}  // namespace ccc::compress
