#include "analysis/capture.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/hooks.h"
#include "model/kernels/elementwise.h"

namespace ccc::analysis {

std::vector<std::string> resolve_hooks(const model::LoadedModel& m, const std::vector<std::string>& patterns) {
  const auto& reg = m.model->hook_registry();
  std::vector<bool> take(reg.size(), false);
  for (const auto& p : patterns) {
    bool any = false;
    for (int s = 0; s < reg.size(); ++s) {
      const auto& n = reg.names[s];
      if (n.empty()) continue;
      const bool hit = reg.opt_in[s] ? n == p : model::glob_match(p, n);
      if (hit) take[s] = any = true;
    }
    CCC_CHECK(any, "--hooks '", p, "' matches no hook point of ", m.source, " (see ccc hooks)");
  }
  std::vector<std::string> out;
  for (int s = 0; s < reg.size(); ++s)
    if (take[s]) out.push_back(reg.names[s]);
  return out;
}

namespace {

struct Field {
  std::string name;
  Dtype type;
  std::vector<int64_t> row_shape;
  int64_t elems = 1;
  size_t elem_bytes = 4;
};

size_t dtype_bytes(Dtype d) { return d == Dtype::kF16 ? 2 : (d == Dtype::kI64 ? 8 : 4); }

}  // namespace

// Metadata fields come first, in this order; activations follow in hook order, then key_pos.
enum MetaField { kTokens, kStream, kPos, kByteOffset, kBits, kNumMeta };

struct ActivationCapture::State {
  model::LoadedModel& m;
  CaptureOptions opt;
  std::string_view input;
  std::vector<uint64_t> counts;  // coded tokens per stream
  std::vector<int64_t> row0;     // first row of each stream
  int64_t N = 0, K = 1, window = 0;
  bool rolling = true;
  std::vector<Field> fields;
  std::vector<std::string> hook_names;
  std::vector<bool> is_pattern;
  int key_field = -1;
  std::unique_ptr<H5Rows> file;
  std::mutex mu;  // the HDF5 file and the counters
  int64_t bytes = 0;
  double bits = 0;
  int64_t rows_written = 0;

  struct Group {
    int64_t s0 = -1, rows = 0, steps = 0, step = 0;
    std::vector<std::vector<uint8_t>> data;  // per field: [rows][K][elems]
    std::vector<double> pending_bits;
    model::HookSet hooks;
    void ensure(const State& st, int64_t n_rows) {
      if (rows == n_rows && !data.empty()) return;
      rows = n_rows;
      data.resize(st.fields.size());
      for (size_t f = 0; f < st.fields.size(); ++f)
        data[f].assign(static_cast<size_t>(rows * st.K * st.fields[f].elems) * st.fields[f].elem_bytes, 0);
      pending_bits.assign(rows, std::numeric_limits<double>::quiet_NaN());
    }
    uint8_t* at(const State& st, size_t f, int64_t r, int64_t slot) {
      return data[f].data() + static_cast<size_t>((r * st.K + slot) * st.fields[f].elems) * st.fields[f].elem_bytes;
    }
  };
  // one slot per possible group (groups <= streams), allocated up front: the callbacks of a group's
  // worker thread reach their state without a lock (only flush() takes one)
  std::vector<std::unique_ptr<Group>> groups;

  State(model::LoadedModel& mm, CaptureOptions o) : m(mm), opt(std::move(o)) {}

  int64_t stream_rows(int64_t s) const { return counts[s] > 0 ? static_cast<int64_t>(counts[s]) + 1 : 0; }

  void flush(Group& g, int64_t first_step, int64_t filled) {
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t r = 0; r < g.rows; ++r) {
      const int64_t s = g.s0 + r;
      const int64_t c = std::clamp<int64_t>(stream_rows(s) - first_step, 0, filled);
      if (c == 0) continue;
      for (size_t f = 0; f < fields.size(); ++f) {
        file->write(fields[f].name, row0[s] + first_step, c, g.at(*this, f, r, 0));
        bytes += c * fields[f].elems * static_cast<int64_t>(fields[f].elem_bytes);
      }
      const auto* b = reinterpret_cast<const float*>(g.at(*this, kBits, r, 0));
      for (int64_t i = 0; i < c; ++i)
        if (!std::isnan(b[i])) bits += b[i];
      rows_written += c;
    }
  }
};

ActivationCapture::ActivationCapture(model::LoadedModel& m, std::string_view input, const model::StreamOptions& run,
                                     CaptureOptions opt)
    : s_(std::make_unique<State>(m, std::move(opt))) {
  auto& st = *s_;
  st.input = input;
  CCC_CHECK(st.opt.dtype == Dtype::kF16 || st.opt.dtype == Dtype::kF32, "dump: --dtype must be f16 or f32");
  st.hook_names = resolve_hooks(m, st.opt.hooks);
  std::tie(st.window, st.rolling) = model::resolve_window_policy(m.config, run);
  st.counts = model::stream_token_counts(m, input, run);
  for (size_t s = 0; s < st.counts.size(); ++s) {
    st.row0.push_back(st.N);
    st.N += st.stream_rows(static_cast<int64_t>(s));
  }
  st.fields = {{"tokens", Dtype::kI32, {}, 1, 4}, {"stream", Dtype::kI32, {}, 1, 4}, {"pos", Dtype::kI64, {}, 1, 8},
               {"byte_offset", Dtype::kI64, {}, 1, 8}, {"bits", Dtype::kF32, {}, 1, 4}};
  std::map<std::string, std::vector<std::string>> shapes;
  for (const auto& [name, shape] : m.model->hook_shapes()) shapes[name] = shape;
  for (const auto& name : st.hook_names) {
    Field f;
    f.name = "acts/" + name;
    f.type = st.opt.dtype;
    f.elem_bytes = dtype_bytes(f.type);
    const bool pattern = name.find("hook_pattern") != std::string::npos || name.find("hook_attn_scores") != std::string::npos;
    if (pattern) {
      CCC_CHECK(st.rolling, "dump: ", name, " is captured on the rolling window policy only (this run is strided)");
      f.row_shape = {m.config.n_heads, st.window};
    } else {
      for (const auto& d : shapes.at(name))
        if (d != "batch" && d != "pos") f.row_shape.push_back(std::stoll(d));
    }
    for (int64_t d : f.row_shape) f.elems *= d;
    st.is_pattern.push_back(pattern);
    st.fields.push_back(f);
  }
  if (std::find(st.is_pattern.begin(), st.is_pattern.end(), true) != st.is_pattern.end()) {
    st.key_field = static_cast<int>(st.fields.size());
    st.fields.push_back({"key_pos", Dtype::kI64, {st.window}, st.window, 8});
  }
  int64_t row_bytes = 0;
  for (const auto& f : st.fields) row_bytes += f.elems * static_cast<int64_t>(f.elem_bytes);
  const int64_t B = static_cast<int64_t>(st.counts.size());
  for (int64_t g = 0; g < B; ++g) st.groups.push_back(std::make_unique<State::Group>());
  st.K = std::clamp<int64_t>(st.opt.buffer_bytes / std::max<int64_t>(1, B * row_bytes), 1, 256);

  st.file = std::make_unique<H5Rows>(st.opt.out, st.opt.force, st.opt.compression, st.opt.shared);
  for (const auto& f : st.fields) st.file->create(f.name, f.type, f.row_shape, st.N);
}

ActivationCapture::~ActivationCapture() = default;

int64_t ActivationCapture::expected_bytes() const {
  int64_t row_bytes = 0;
  for (const auto& f : s_->fields) row_bytes += f.elems * static_cast<int64_t>(f.elem_bytes);
  return s_->N * row_bytes;
}

void ActivationCapture::attach(model::StreamOptions& run, model::FeedObservers& observers,
                               const std::function<void(model::HookSet&)>& edits) {
  State* st = s_.get();
  auto group = [st](int64_t g) -> State::Group& {
    CCC_CHECK(g >= 0 && g < static_cast<int64_t>(st->groups.size()), "dump: group ", g, " beyond the stream count");
    return *st->groups[g];
  };
  if (st->hook_names.empty() && edits) {
    run.hooks = [group, edits](int64_t g) -> model::HookSet* {
      State::Group* gp = &group(g);
      edits(gp->hooks);
      return &gp->hooks;
    };
  }
  if (!st->hook_names.empty()) {
    run.hooks = [st, group, edits](int64_t g) -> model::HookSet* {
      State::Group* gp = &group(g);
      if (edits) edits(gp->hooks);  // before the observers: sites are recorded as edited
      for (size_t h = 0; h < st->hook_names.size(); ++h) {
        const size_t f = kNumMeta + h;
        const bool pattern = st->is_pattern[h];
        gp->hooks.observe(st->hook_names[h], [st, gp, f, pattern](const torch::Tensor& x, const model::HookContext& ctx) {
          auto last = (pattern ? x.select(2, x.size(2) - 1) : x.select(1, x.size(1) - 1)).to(torch::kFloat32).contiguous();
          const int64_t rows = last.size(0);
          gp->ensure(*st, rows);
          const auto& fld = st->fields[f];
          const int64_t slot = gp->step % st->K;
          // patterns / scores on the decode path have one column per visible cache slot (fewer than W
          // until the window fills): pad to W (pattern 0, scores −inf; key_pos −1)
          const int64_t W = st->window, cols = pattern ? last.size(-1) : 0;
          if (pattern) {
            CCC_CHECK(cols <= W && last.numel() == rows * st->m.config.n_heads * cols, "dump: ", fld.name,
                      " has an unexpected shape ", last.sizes());
            const bool scores = fld.name.find("hook_attn_scores") != std::string::npos;
            auto padded = torch::full({rows, st->m.config.n_heads, W},
                                      scores ? -std::numeric_limits<float>::infinity() : 0.0f);
            padded.narrow(2, 0, cols).copy_(last);
            last = padded;
          }
          CCC_CHECK(last.numel() == rows * fld.elems, "dump: ", fld.name, " has ", last.numel() / rows,
                    " values per row on this path, expected ", fld.elems);
          const float* src = last.data_ptr<float>();
          for (int64_t r = 0; r < rows; ++r) {
            uint8_t* dst = gp->at(*st, f, r, slot);
            if (fld.type == Dtype::kF16) model::float_to_half(src + r * fld.elems, reinterpret_cast<uint16_t*>(dst), fld.elems);
            else std::memcpy(dst, src + r * fld.elems, sizeof(float) * fld.elems);
            if (pattern && st->key_field >= 0 && ctx.key_pos != nullptr) {
              auto* k = reinterpret_cast<int64_t*>(gp->at(*st, st->key_field, r, slot));
              for (int64_t j = 0; j < W; ++j) k[j] = j < static_cast<int64_t>(ctx.key_pos->size()) ? (*ctx.key_pos)[j] : -1;
            }
          }
        });
      }
      return &gp->hooks;
    };
  }
  observers.on_coded = [group](int64_t g, int64_t stream, int64_t pos, int64_t token, double bits) {
    auto& gp = group(g);
    gp.pending_bits[stream - gp.s0] = bits;
  };
  observers.on_fed = [st, group](int64_t g, int64_t s0, int64_t pos, const std::vector<int64_t>& tokens,
                             const std::vector<uint8_t>& live, const std::vector<int64_t>& offsets) {
    auto& gp = group(g);
    const int64_t rows = static_cast<int64_t>(tokens.size());
    gp.ensure(*st, rows);
    if (gp.s0 < 0) {
      gp.s0 = s0;
      for (int64_t r = 0; r < rows; ++r) gp.steps = std::max(gp.steps, st->stream_rows(s0 + r));
    }
    const int64_t slot = pos % st->K;
    for (int64_t r = 0; r < rows; ++r) {
      *reinterpret_cast<int32_t*>(gp.at(*st, kTokens, r, slot)) = static_cast<int32_t>(tokens[r]);
      *reinterpret_cast<int32_t*>(gp.at(*st, kStream, r, slot)) = static_cast<int32_t>(s0 + r);
      *reinterpret_cast<int64_t*>(gp.at(*st, kPos, r, slot)) = pos;
      *reinterpret_cast<int64_t*>(gp.at(*st, kByteOffset, r, slot)) = live[r] ? offsets[r] : -1;
      *reinterpret_cast<float*>(gp.at(*st, kBits, r, slot)) =
          pos == 0 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(gp.pending_bits[r]);
    }
    gp.step = pos + 1;
    if (gp.step % st->K == 0 || gp.step == gp.steps) st->flush(gp, (gp.step - 1) / st->K * st->K, (gp.step - 1) % st->K + 1);
  };
}

void ActivationCapture::finish() {
  auto& st = *s_;
  if (st.opt.shared && dist::size() > 1) {  // every rank wrote its own streams' rows
    std::vector<double> v{static_cast<double>(st.rows_written), static_cast<double>(st.bytes), st.bits};
    dist::allreduce_sum(v);
    st.rows_written = static_cast<int64_t>(v[0]);
    st.bytes = static_cast<int64_t>(v[1]);
    st.bits = v[2];
  }
  CCC_CHECK(st.rows_written == st.N, "dump: ", st.rows_written, " rows written, expected ", st.N,
            " (the run did not feed every position)");
  auto cfg = st.m.config.to_json();
  st.file->attr("fingerprint", st.m.fingerprint);
  st.file->attr("config", cfg.dump());
  st.file->attr("source", st.opt.source);
  st.file->attr("source_sha256", sha256_hex(std::string(st.input)));
  st.file->attr("n_bytes", static_cast<int64_t>(st.input.size()));
  st.file->attr("streams", static_cast<int64_t>(st.counts.size()));
  st.file->attr("window", st.window);
  st.file->attr("policy", st.rolling ? "rolling" : "strided");
  st.file->attr("dtype", st.opt.dtype == Dtype::kF16 ? "f16" : "f32");
  st.file->attr("compression", to_string(st.opt.compression));
  st.file->attr("ccc_version", CCC_VERSION);
  st.file->attr("command", st.opt.command);
  st.file->attr("model", st.m.source);
  st.file->commit();
}

int64_t ActivationCapture::rows() const { return s_->N; }
int64_t ActivationCapture::bytes_written() const { return s_->bytes; }
double ActivationCapture::total_bits() const { return s_->bits; }

}  // namespace ccc::analysis
