#include "compress/lm_codec.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include <torch/torch.h>
#include <torch/version.h>

#include "compress/arithmetic_coder.h"
#include "model/error.h"
#include "model/score.h"

namespace ccc::compress {

namespace {

// OpenBLAS thread control, looked up at run time: libtorch links whichever libblas.so.3 is installed.
using SetThreadsFn = void (*)(int);
using GetIntFn = int (*)();
using GetStrFn = char* (*)();

struct BlasControl {
  SetThreadsFn set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  GetIntFn get = reinterpret_cast<GetIntFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  GetStrFn core = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  GetStrFn config = reinterpret_cast<GetStrFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
};

// Pins single-threaded kernels for the lifetime of the object, restoring the previous settings after.
class SingleThreadedKernels {
 public:
  SingleThreadedKernels() : torch_threads_(torch::get_num_threads()) {
    if (blas_.get) blas_threads_ = blas_.get();
    torch::set_num_threads(1);
    if (blas_.set) blas_.set(1);
  }
  ~SingleThreadedKernels() {
    torch::set_num_threads(torch_threads_);
    if (blas_.set && blas_threads_ > 0) blas_.set(blas_threads_);
  }

 private:
  BlasControl blas_;
  int torch_threads_;
  int blas_threads_ = 0;
};

struct Segment {
  uint64_t begin = 0, end = 0;     // bytes of the original
  std::vector<int64_t> tokens;     // BOS + encode(bytes)
};

std::vector<std::pair<int64_t, int64_t>> group_ranges(int64_t streams, int64_t groups) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t g = 0; g < groups; ++g) out.emplace_back(g * streams / groups, (g + 1) * streams / groups);
  return out;
}

// The model side of one group: feeds one token per row per step through the KV cache and returns the
// CDF of each row's next token. Replays the window policy: when the context would exceed W-1 tokens,
// the cache restarts with the last W-1-S fed tokens plus the current one.
class GroupModel {
 public:
  GroupModel(model::Transformer& m, int64_t rows, int64_t window, int64_t stride, int64_t pad, uint8_t total_log2)
      : m_(m), rows_(rows), W_(window), keep_(window - 1 - stride), pad_(pad), total_(uint64_t{1} << total_log2),
        cache_(m->make_cache(rows, window)), history_(rows) {}

  // Feeds `cur` (one token per row) and fills cdfs[r] for every row.
  void step(const std::vector<int64_t>& cur, std::vector<std::vector<uint64_t>>& cdfs) {
    torch::Tensor input;
    for (int64_t r = 0; r < rows_; ++r) history_[r].push_back(cur[r]);
    if (cache_.len == W_ - 1) {
      cache_.reset();
      const int64_t n = keep_ + 1;
      input = torch::empty({rows_, n}, torch::kInt64);
      auto acc = input.accessor<int64_t, 2>();
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t j = 0; j < n; ++j) acc[r][j] = history_[r][history_[r].size() - n + j];
    } else {
      input = torch::tensor(cur, torch::kInt64).view({rows_, 1});
    }
    auto logits = m_->forward(input, {nullptr, &cache_}).select(1, -1).to(torch::kFloat64).contiguous();  // [rows, V]
    const int64_t V = logits.size(1);
    const double* p = logits.data_ptr<double>();
    std::vector<double> probs(V);
    for (int64_t r = 0; r < rows_; ++r) {
      const double* row = p + r * V;
      double mx = row[0];
      for (int64_t i = 1; i < V; ++i) mx = std::max(mx, row[i]);
      for (int64_t i = 0; i < V; ++i) probs[i] = std::exp(row[i] - mx);
      cdfs[r] = cdf_from_probs(probs, total_);
    }
    // histories only need the last keep_ tokens
    if (history_[0].size() > static_cast<size_t>(4 * W_))
      for (auto& h : history_) h.erase(h.begin(), h.end() - keep_);
  }

 private:
  model::Transformer& m_;
  int64_t rows_, W_, keep_, pad_;
  uint64_t total_;
  model::KVCache cache_;
  std::vector<std::vector<int64_t>> history_;
};

void run_groups(int64_t n_groups, int64_t threads, const std::function<void(int64_t)>& fn) {
  if (threads <= 0) threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
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
// each step feeds every row's current token, then `code(r, cdf)` codes row r's next token (encode it or
// decode it) and returns it. Rows whose n_tokens are done are padded with BOS.
template <typename Code>
void code_group(model::Transformer& model, const Header& h, int64_t bos, const std::vector<uint64_t>& n_tokens,
                std::atomic<uint64_t>& done, uint64_t total_tokens, const CodecOptions& opt, Code&& code) {
  const int64_t rows = static_cast<int64_t>(n_tokens.size());
  const uint64_t steps = *std::max_element(n_tokens.begin(), n_tokens.end());
  GroupModel gm(model, rows, h.window, h.stride, bos, h.total_log2);
  std::vector<int64_t> cur(rows, bos);
  std::vector<std::vector<uint64_t>> cdfs(rows);
  for (uint64_t i = 0; i < steps; ++i) {
    gm.step(cur, cdfs);
    for (int64_t r = 0; r < rows; ++r) {
      if (i < n_tokens[r]) {
        cur[r] = code(r, cdfs[r]);
        ++done;
      } else {
        cur[r] = bos;
      }
    }
    if (opt.progress && (i % 64 == 0 || i + 1 == steps)) opt.progress(done.load(), total_tokens);
  }
}

}  // namespace

std::string runtime_id() {
  BlasControl b;
  std::string id = "ccc-codec-1; gcc " __VERSION__ "; libtorch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                   std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
  Dl_info info;
  if (b.set && dladdr(reinterpret_cast<void*>(b.set), &info) && info.dli_fname) id += std::string("; blas ") + info.dli_fname;
  if (b.config) id += std::string(" (") + b.config() + ")";
  if (b.core) id += std::string("; kernel ") + b.core();
  if (!b.set) id += "; blas not OpenBLAS";
  return id;
}

int64_t auto_streams(uint64_t n_bytes) {
  return std::clamp<int64_t>(static_cast<int64_t>(n_bytes / 4096), 1, 256);
}

std::string lm_compress(model::LoadedModel& m, std::string_view input, const CodecOptions& opt) {
  CCC_CHECK(m.tokenizer->lossless(), "compress: tokenizer ", m.tokenizer->kind(), " is not lossless");
  const auto& cfg = m.config;
  const uint64_t n = input.size();
  int64_t B = opt.streams > 0 ? opt.streams : auto_streams(n);
  B = std::max<int64_t>(1, std::min<int64_t>(B, std::max<uint64_t>(1, n)));
  int64_t G = opt.groups > 0 ? opt.groups : static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  G = std::min(G, B);
  Header h;
  h.fingerprint = fingerprint_from_hex(m.fingerprint);
  h.tokenizer_kind = m.tokenizer->kind();
  h.model_hint = m.source;
  h.runtime_id = runtime_id();
  h.original_bytes = n;
  h.checksum = xxh64(input);
  h.n_groups = static_cast<uint32_t>(G);
  h.window = static_cast<uint32_t>(cfg.n_ctx);
  h.stride = static_cast<uint32_t>(std::max<int64_t>(1, cfg.n_ctx / 2));
  h.total_log2 = opt.total_log2;
  CCC_CHECK(h.total_log2 >= 24 && h.total_log2 <= 31, "compress: cdf total must be 2^24 .. 2^31");

  std::vector<Segment> segs(B);
  uint64_t total_tokens = 0;
  for (int64_t s = 0; s < B; ++s) {
    segs[s].begin = n * s / B;
    segs[s].end = n * (s + 1) / B;
    segs[s].tokens = {cfg.bos_id};
    auto enc = m.tokenizer->encode(input.substr(segs[s].begin, segs[s].end - segs[s].begin));
    for (int64_t t : enc)
      CCC_CHECK(t >= 0 && t < cfg.d_vocab_out, "compress: token ", t, " cannot be predicted by the model (d_vocab_out ",
                cfg.d_vocab_out, ")");
    segs[s].tokens.insert(segs[s].tokens.end(), enc.begin(), enc.end());
    total_tokens += enc.size();
  }
  std::vector<std::string> payloads(B);
  std::atomic<uint64_t> done{0};
  SingleThreadedKernels pin;
  const auto ranges = group_ranges(B, G);
  run_groups(G, opt.threads, [&](int64_t g) {
    const auto [s0, s1] = ranges[g];
    const int64_t rows = s1 - s0;
    std::vector<uint64_t> n_tokens;
    for (int64_t s = s0; s < s1; ++s) n_tokens.push_back(segs[s].tokens.size() - 1);
    std::vector<ArithmeticEncoder> enc(rows);
    code_group(m.model, h, cfg.bos_id, n_tokens, done, total_tokens, opt,
               [&](int64_t r, const std::vector<uint64_t>& cdf) {
                 const auto& toks = segs[s0 + r].tokens;
                 const int64_t t = toks[enc[r].symbols() + 1];
                 enc[r].encode(cdf[t], cdf[t + 1], cdf.back());
                 return t;
               });
    for (int64_t r = 0; r < rows; ++r)
      payloads[s0 + r] = segs[s0 + r].tokens.size() > 1 ? enc[r].finish() : std::string();
  });
  for (int64_t s = 0; s < B; ++s)
    h.streams.push_back({segs[s].end - segs[s].begin, segs[s].tokens.size() - 1, payloads[s].size()});
  std::string out = serialize_header(h);
  for (const auto& p : payloads) out += p;
  return out;
}

std::string lm_decompress(model::LoadedModel& m, std::string_view container, const std::string& name,
                          const CodecOptions& opt) {
  size_t offset = 0;
  const Header h = parse_container(container, name, &offset);
  const auto& cfg = m.config;
  CCC_CHECK(hex(h.fingerprint) == m.fingerprint, name, ": compressed with another model (fingerprint ",
            hex(h.fingerprint).substr(0, 16), "..., hint '", h.model_hint, "'); the loaded model ", m.source,
            " has fingerprint ", m.fingerprint.substr(0, 16), "...");
  CCC_CHECK(h.tokenizer_kind == m.tokenizer->kind(), name, ": tokenizer ", h.tokenizer_kind, " expected, model has ",
            m.tokenizer->kind());
  CCC_CHECK(h.window <= cfg.n_ctx, name, ": window ", h.window, " exceeds the model context ", cfg.n_ctx);
  const int64_t B = static_cast<int64_t>(h.streams.size());
  std::vector<std::string_view> payloads;
  for (const auto& s : h.streams) {
    payloads.push_back(container.substr(offset, s.payload_bytes));
    offset += s.payload_bytes;
  }
  std::vector<std::vector<int64_t>> tokens(B);
  uint64_t total_tokens = 0;
  for (const auto& s : h.streams) total_tokens += s.n_tokens;
  CCC_CHECK(opt.max_tokens == 0 || total_tokens <= opt.max_tokens, name, ": declares ", total_tokens,
            " tokens, more than the limit of ", opt.max_tokens);
  std::atomic<uint64_t> done{0};
  SingleThreadedKernels pin;
  const auto ranges = group_ranges(B, h.n_groups);
  run_groups(h.n_groups, opt.threads, [&](int64_t g) {
    const auto [s0, s1] = ranges[g];
    std::vector<uint64_t> n_tokens;
    std::vector<ArithmeticDecoder> dec;
    for (int64_t s = s0; s < s1; ++s) {
      n_tokens.push_back(h.streams[s].n_tokens);
      dec.emplace_back(payloads[s]);
    }
    code_group(m.model, h, cfg.bos_id, n_tokens, done, total_tokens, opt,
               [&](int64_t r, const std::vector<uint64_t>& cdf) {
                 const int64_t t = static_cast<int64_t>(dec[r].decode_symbol(cdf));
                 CCC_CHECK(!dec[r].overrun(), name, ": stream ", s0 + r, " is corrupt (payload exhausted)");
                 tokens[s0 + r].push_back(t);
                 return t;
               });
  });
  std::string out;
  out.reserve(h.original_bytes);
  for (int64_t s = 0; s < B; ++s) {
    std::string part = m.tokenizer->decode(tokens[s]);
    CCC_CHECK(part.size() == h.streams[s].n_bytes, name, ": stream ", s, " decoded to ", part.size(), " bytes, expected ",
              h.streams[s].n_bytes, " (corrupt data, or a model/runtime that differs from the encoder's)");
    out += part;
  }
  if (xxh64(out) != h.checksum) {
    const std::string here = runtime_id();
    CCC_FAIL(name, ": decoded data fails its checksum; nothing written. ",
             h.runtime_id == here ? "The payload is corrupt."
                                  : "The encoder ran a different arithmetic path: encoder '" + h.runtime_id +
                                        "', this machine '" + here + "'.");
  }
  return out;
}

double segmented_bits(model::LoadedModel& m, std::string_view input, int64_t streams) {
  const uint64_t n = input.size();
  int64_t B = streams > 0 ? streams : auto_streams(n);
  B = std::max<int64_t>(1, std::min<int64_t>(B, std::max<uint64_t>(1, n)));
  double total = 0;
  for (int64_t s = 0; s < B; ++s) {
    std::vector<int64_t> toks{m.config.bos_id};
    auto enc = m.tokenizer->encode(input.substr(n * s / B, n * (s + 1) / B - n * s / B));
    toks.insert(toks.end(), enc.begin(), enc.end());
    for (double b : model::score_bits(m.model, toks)) total += b;
  }
  return total;
}

}  // namespace ccc::compress
