#include "analysis/capture.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>
#include <tuple>
#include <filesystem>
#include <random>

#include <H5Cpp.h>

#include "analysis/activation_store.h"
#include "compress/lm_codec.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/bits.h"
#include "model/core/score.h"
#include <unistd.h>
#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

namespace fs = std::filesystem;

std::string sample_text(size_t n) {
  std::string t;
  std::mt19937 rng(5);
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat", ". ", "\n", "Dog ", "(quoted) ", "42 "};
  while (t.size() < n) t += words[rng() % 11];
  t.resize(n);
  return t;
}

// Runs the encoder with capture; returns the container.
std::string dump(model::LoadedModel& m, const std::string& text, const std::string& out, compress::CodecOptions codec,
                 std::vector<std::string> hooks, Dtype dtype = Dtype::kF32, Compression comp = Compression::kNone) {
  CaptureOptions c;
  c.out = out;
  c.hooks = std::move(hooks);
  c.dtype = dtype;
  c.compression = comp;
  c.source = "sample";
  c.command = "test";
  ActivationCapture cap(m, text, codec, c);
  cap.attach(codec, codec);
  auto packed = compress::lm_compress(m, text, codec);
  cap.finish();
  return packed;
}

TEST(Capture, RowsMetadataBitsAndActivationsMatchAFullForwardOfEachStream) {
  auto m = test::tiny_byte_lm(3, 128);
  const std::string text = sample_text(300);
  test::TempDir dir;
  compress::CodecOptions codec;
  codec.streams = 3;
  codec.window = 128;  // every stream (100 bytes + BOS) fits its window: the rolling run sees whole prefixes
  codec.groups = 2;
  const std::string path = dir.file("d.h5");
  // the same run also fills an in-process cache: (hook, stream, pos) -> the activation row the model computed
  std::map<std::tuple<std::string, int64_t, int64_t>, torch::Tensor> seen;
  std::mutex mu;
  {
    CaptureOptions c;
    c.out = path;
    c.hooks = {"blocks.*.mlp.hook_post", "blocks.1.attn.hook_z", "blocks.0.hook_resid_post"};
    c.dtype = Dtype::kF32;
    compress::CodecOptions run = codec;  // the capture's callbacks live as long as it does
    ActivationCapture cap(m, text, run, c);
    cap.attach(run, run);
    auto inner = run.hooks;
    run.hooks = [&, inner](int64_t g) {
      auto* hs = inner(g);
      for (const auto& h : c.hooks)
        hs->observe(h, [&](const torch::Tensor& x, const model::HookContext& ctx) {
          std::lock_guard<std::mutex> lock(mu);
          for (int64_t r = 0; r < x.size(0); ++r)
            if (ctx.run->live[r])
              seen[{ctx.name, ctx.run->stream[r], ctx.run->position_at(r, x.size(1) - 1)}] =
                  x[r][x.size(1) - 1].reshape({-1}).clone();
        });
      return hs;
    };
    compress::lm_compress(m, text, run);
    cap.finish();
  }
  ActivationStore st(path);
  ASSERT_EQ(st.rows(), 3 * 101);
  EXPECT_EQ(st.hooks(), (std::vector<std::string>{"blocks.0.hook_resid_post", "blocks.0.mlp.hook_post",
                                                  "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post"}));
  EXPECT_EQ(st.row_shape("blocks.1.attn.hook_z"), (std::vector<int64_t>{2, 8}));
  const auto tokens = st.tokens();
  const auto streams = st.streams();
  const auto pos = st.positions();
  const auto offs = st.byte_offsets();
  const auto bits = st.bits();
  // the same run on the full path, stream by stream, with every captured hook cached
  double dumped_total = 0, full_total = 0;
  double max_diff = 0;
  for (int64_t s = 0; s < 3; ++s) {
    const int64_t r0 = s * 101;
    std::vector<int64_t> seq{256};
    for (int64_t i = 0; i < 100; ++i) seq.push_back(static_cast<unsigned char>(text[s * 100 + i]));
    for (int64_t i = 0; i <= 100; ++i) {
      EXPECT_EQ(tokens[r0 + i], seq[i]);
      EXPECT_EQ(streams[r0 + i], s);
      EXPECT_EQ(pos[r0 + i], i);
      EXPECT_EQ(offs[r0 + i], i == 0 ? -1 : s * 100 + i - 1);
    }
    EXPECT_TRUE(std::isnan(bits[r0]));
    model::HookSet hooks;
    hooks.cache("blocks.*.mlp.hook_post");
    hooks.cache("blocks.1.attn.hook_z");
    hooks.cache("blocks.0.hook_resid_post");
    torch::InferenceMode guard;
    auto t = torch::tensor(seq).unsqueeze(0);
    auto logits = m.model->forward(t, {&hooks});
    auto ref_bits = model::token_bits(logits.narrow(1, 0, 100).to(torch::kFloat64), t.narrow(1, 1, 100));
    for (int64_t i = 1; i <= 100; ++i) {
      dumped_total += bits[r0 + i];
      full_total += ref_bits[0][i - 1].item<double>();
      max_diff = std::max(max_diff, std::abs(bits[r0 + i] - ref_bits[0][i - 1].item<double>()));
    }
    for (const auto& h : st.hooks()) {
      auto got = st.block(h, r0, 101);
      auto got_t = torch::from_blob(got.data(), {got.rows(), got.cols()}, torch::kFloat32);
      // exactly what the run computed (f32 dump)
      double exact = 0;
      for (int64_t i = 0; i <= 100; ++i) exact = std::max(exact, test::max_abs_diff(got_t[i], seen.at({h, s, i})));
      EXPECT_EQ(exact, 0.0) << h << " stream " << s << ": max |dump − in-process cache| = " << exact;
      // and, independently, the full path in fp32 (the run keeps its KV cache in fp16: ~1e-3 apart)
      auto ref = hooks.cached().at(h)[0].reshape({101, -1}).contiguous();
      const double d = test::max_abs_diff(got_t, ref), scale = ref.abs().max().item<double>();
      EXPECT_LT(d, 5e-3 * std::max(1.0, scale)) << h << " stream " << s << ": max |dump − full path| = " << d;
    }
  }
  EXPECT_LT(max_diff, 5e-3) << "per-token bits (fp16 KV cache vs fp32 full path): max |dump − full path| = " << max_diff;
  EXPECT_NEAR(dumped_total, full_total, 1e-4 * full_total);
  // Σ bits equals ccc bits --streams (segmented_bits) under the same options
  EXPECT_NEAR(dumped_total, model::segmented_bits(m, text, codec), 1e-4 * dumped_total);
  EXPECT_EQ(st.attr("fingerprint"), m.fingerprint);
  EXPECT_EQ(st.attr("policy"), "rolling");
  EXPECT_EQ(st.attr_int("window"), 128);
  EXPECT_EQ(st.attr_int("streams"), 3);
  EXPECT_EQ(st.attr_int("n_bytes"), 300);
  EXPECT_EQ(st.attr("source_sha256"), sha256_hex(text));
}

TEST(Capture, CompressedBytesAreIdenticalWithAndWithoutADump) {
  auto m = test::tiny_byte_lm(4, 32);
  const std::string text = sample_text(2000);
  test::TempDir dir;
  for (bool strided : {false, true}) {
    compress::CodecOptions codec;
    codec.streams = 5;
    codec.groups = 2;
    codec.strided = strided;
    const auto plain = compress::lm_compress(m, text, codec);
    const auto with = dump(m, text, dir.file(strided ? "s.h5" : "r.h5"), codec,
                           {"blocks.*.hook_resid_*", "blocks.*.mlp.*", "blocks.*.attn.hook_z", "ln_final.*"}, Dtype::kF16);
    EXPECT_EQ(plain, with) << "strided " << strided;
    ActivationStore st(dir.file(strided ? "s.h5" : "r.h5"));
    EXPECT_EQ(st.rows(), 2000 + 5);
    EXPECT_EQ(st.attr("policy"), strided ? "strided" : "rolling");
    // strided policy: bits still sum to segmented_bits
    double total = 0;
    for (float b : st.bits())
      if (!std::isnan(b)) total += b;
    EXPECT_NEAR(total, model::segmented_bits(m, text, codec), 1e-4 * total) << "strided " << strided;
  }
}

TEST(Capture, WorkerThreadsDoNotChangeTheDataset) {
  auto m = test::tiny_byte_lm(5, 32);
  const std::string text = sample_text(1500);
  test::TempDir dir;
  compress::CodecOptions codec;
  codec.streams = 6;
  codec.groups = 3;
  codec.threads = 1;
  dump(m, text, dir.file("a.h5"), codec, {"blocks.0.attn.hook_pattern", "blocks.1.mlp.hook_post"});
  codec.threads = 2;
  dump(m, text, dir.file("b.h5"), codec, {"blocks.0.attn.hook_pattern", "blocks.1.mlp.hook_post"});
  ActivationStore a(dir.file("a.h5")), b(dir.file("b.h5"));
  for (const auto& h : a.hooks()) {
    auto x = a.block(h, 0, a.rows()), y = b.block(h, 0, b.rows());
    EXPECT_TRUE(x.cwiseEqual(y).all() || (x.array().isNaN() == y.array().isNaN()).all()) << h;
    EXPECT_EQ((x - y).cwiseAbs().maxCoeff(), 0.0f) << h;
  }
  EXPECT_EQ(a.bits().size(), b.bits().size());
  EXPECT_EQ(a.tokens(), b.tokens());
  // patterns: one column per cache slot, rows sum to 1 over the visible slots
  auto p = a.block("blocks.0.attn.hook_pattern", 0, a.rows());
  EXPECT_EQ(a.row_shape("blocks.0.attn.hook_pattern"), (std::vector<int64_t>{2, 16}));
  for (int64_t r = 0; r < p.rows(); r += 37) EXPECT_NEAR(p.row(r).head(16).sum(), 1.0f, 1e-5) << "row " << r;
}

TEST(Capture, BadRequestsFailCleanlyAndLeaveNothing) {
  auto m = test::tiny_byte_lm(6, 32);
  const std::string text = sample_text(400);
  test::TempDir dir;
  compress::CodecOptions codec;
  CaptureOptions c;
  c.out = dir.file("x.h5");
  c.hooks = {"blocks.*.no_such_hook"};
  EXPECT_THROW(ActivationCapture(m, text, codec, c), Error);
  c.hooks = {"blocks.0.hook_resid_pre"};
  c.out = dir.file("missing/dir/x.h5");
  EXPECT_THROW(ActivationCapture(m, text, codec, c), Error);
  // an existing output is refused without force and kept intact
  c.out = dir.file("keep.h5");
  write_file_atomic(c.out, "precious");
  EXPECT_THROW(ActivationCapture(m, text, codec, c), Error);
  EXPECT_EQ(read_file(c.out), "precious");
  // a run that never finishes leaves neither the output nor its temporary file
  c.out = dir.file("abandoned.h5");
  {
    ActivationCapture cap(m, text, codec, c);
    size_t temps = 0;  // the dump is built under a hidden temporary (.abandoned.h5~ccc<pid>-<hex>)
    for (const auto& e : fs::directory_iterator(dir.path()))
      temps += e.path().filename().string().rfind(".abandoned.h5~ccc" + std::to_string(::getpid()) + "-", 0) == 0;
    EXPECT_EQ(temps, 1u);
  }
  EXPECT_FALSE(fs::exists(c.out));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename() != "keep.h5";
  EXPECT_EQ(files, 0u);
  // patterns need the rolling policy
  codec.strided = true;
  c.hooks = {"blocks.0.attn.hook_pattern"};
  EXPECT_THROW(ActivationCapture(m, text, codec, c), Error);
}

// A hostile dump is refused at open, naming the file and what is wrong, before anything is read or
// sized from it: a 2-D tokens column (its length used to be read into one integer), a column shorter than
// the rows, activations whose first dimension is not the rows, a scalar or oversized hook, a non-float hook,
// and a hollow dataset (declared, never written: a tiny file declaring gigabytes).
TEST(Capture, MalformedDumpsAreRefusedAtOpen) {
  test::TempDir dir;
  H5::Exception::dontPrint();
  struct Case {
    const char* name;
    std::vector<hsize_t> tokens, bits, acts;
    bool int_acts;
    const char* error;
    bool hollow_acts = false;
    bool float_tokens = false;
  };
  const std::vector<Case> cases = {
      {"ok", {6}, {6}, {6, 2, 3}, false, nullptr},
      {"tokens2d", {6, 4}, {6}, {6, 2}, false, "tokens has 2 dimensions"},
      {"shortbits", {6}, {5}, {6, 2}, false, "bits does not hold one value per row"},
      {"rows", {6}, {6}, {7, 2}, false, "is not [rows = 6"},
      {"scalar", {6}, {6}, {6}, false, "is not [rows = 6"},
      {"huge", {6}, {6}, {6, 1u << 20, 1u << 20}, false, "rows hold more than"},
      {"ints", {6}, {6}, {6, 2}, true, "is not f16 or f32"},
      {"hollow", {6}, {6}, {6, 4}, false, "acts/blocks.0.hook_resid_pre declares 96 bytes but stores 0", true},
      {"floattokens", {6}, {6}, {6, 2}, false, "tokens is not an integer dataset", false, true},
  };
  for (const auto& c : cases) {
    const std::string path = dir.file(std::string(c.name) + ".h5");
    {
      H5::H5File f(path, H5F_ACC_TRUNC);
      // chunked: a declared size costs no disk until written (small datasets are written, zeros)
      auto make = [&](H5::Group& where, const std::string& name, const std::vector<hsize_t>& dims, const H5::PredType& t,
                      bool write) {
        H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
        H5::DSetCreatPropList props;
        std::vector<hsize_t> chunk(dims.size(), 1);
        props.setChunk(static_cast<int>(chunk.size()), chunk.data());
        auto ds = where.createDataSet(name, t, space, props);
        hsize_t n = 1;
        for (hsize_t d : dims) n *= d;
        if (write && n <= 4096) ds.write(std::vector<int32_t>(n, 0).data(), t);  // 4-byte types only
      };
      H5::Group root = f.openGroup("/");
      make(root, "tokens", c.tokens, c.float_tokens ? H5::PredType::NATIVE_FLOAT : H5::PredType::NATIVE_INT32, true);
      make(root, "bits", c.bits, H5::PredType::NATIVE_FLOAT, true);
      H5::Group acts = f.createGroup("acts");
      make(acts, "blocks.0.hook_resid_pre", c.acts, c.int_acts ? H5::PredType::NATIVE_INT32 : H5::PredType::NATIVE_FLOAT,
           !c.hollow_acts);
    }
    if (c.error == nullptr) {
      ActivationStore st(path);
      EXPECT_EQ(st.rows(), 6);
      EXPECT_EQ(st.row_shape("blocks.0.hook_resid_pre"), (std::vector<int64_t>{2, 3}));
      EXPECT_EQ(st.block("blocks.0.hook_resid_pre", 0, 6).size(), 36);
      // 6 rows can come from a text of 3 bytes (3 tokens, 3 segment BOS rows) but not from one of 2
      st.check_text_size(3);
      test::expect_error([&] { st.check_text_size(2); }, {path, "declares 6 rows, more than a text of 2 bytes"});
      continue;
    }
    test::expect_error([&] { ActivationStore st(path); }, {path, c.error});
  }
}

// A dump is one self-contained file: an external link (which HDF5 would follow to any file, FIFO or device
// at open), a soft link, external raw storage and virtual datasets are refused by name before traversal.
TEST(Capture, LinksAndStorageOutsideTheFileAreRefused) {
  test::TempDir dir;
  H5::Exception::dontPrint();
  const hsize_t rows = 4, dims[2] = {4, 3};
  std::vector<float> zeros(12, 0.0f);
  auto base = [&](const std::string& path) {
    H5::H5File f(path, H5F_ACC_TRUNC);
    f.createDataSet("tokens", H5::PredType::STD_I32LE, H5::DataSpace(1, &rows)).write(zeros.data(), H5::PredType::NATIVE_FLOAT);
    f.createDataSet("bits", H5::PredType::IEEE_F32LE, H5::DataSpace(1, &rows)).write(zeros.data(), H5::PredType::NATIVE_FLOAT);
    f.createGroup("acts");
    return f;
  };
  {
    H5::H5File other = base(dir.file("other.h5"));
    other.createDataSet("acts/h", H5::PredType::IEEE_F32LE, H5::DataSpace(2, dims)).write(zeros.data(), H5::PredType::NATIVE_FLOAT);
  }
  {
    H5::H5File f = base(dir.file("elink.h5"));
    ASSERT_GE(H5Lcreate_external(dir.file("other.h5").c_str(), "/acts/h", f.getId(), "acts/h", H5P_DEFAULT, H5P_DEFAULT), 0);
  }
  test::expect_error([&] { ActivationStore st(dir.file("elink.h5")); }, {dir.file("elink.h5"), "h is an external link"});
  {
    H5::H5File f = base(dir.file("soft.h5"));
    f.createDataSet("acts/h", H5::PredType::IEEE_F32LE, H5::DataSpace(2, dims)).write(zeros.data(), H5::PredType::NATIVE_FLOAT);
    f.unlink("bits");
    f.link(H5L_TYPE_SOFT, "/tokens", "bits");
  }
  test::expect_error([&] { ActivationStore st(dir.file("soft.h5")); }, {"bits is a soft or user-defined link"});
  {
    H5::H5File f = base(dir.file("extern.h5"));
    H5::DSetCreatPropList dcpl;
    dcpl.setExternal(dir.file("raw.bin").c_str(), 0, 12 * 4);
    f.createDataSet("acts/h", H5::PredType::IEEE_F32LE, H5::DataSpace(2, dims), dcpl).write(zeros.data(), H5::PredType::NATIVE_FLOAT);
  }
  test::expect_error([&] { ActivationStore st(dir.file("extern.h5")); }, {"acts/h keeps its data in external files"});
}

// Activations are values, whatever byte order or float layout the file stores them in: f16 and f32, little-
// and big-endian (h5py writes '>f2' when asked), read back to the same floats.
TEST(Capture, ActivationsOfAnyByteOrderReadAsTheirValues) {
  test::TempDir dir;
  H5::Exception::dontPrint();
  std::vector<float> values(6 * 5);
  for (size_t i = 0; i < values.size(); ++i) values[i] = (static_cast<float>(i) - 11.0f) * 0.375f;  // exact in f16
  auto half = [](H5T_order_t order) {
    H5::FloatType t(H5::PredType::IEEE_F32LE);
    t.setFields(15, 10, 5, 0, 10);
    t.setSize(2);
    t.setEbias(15);
    t.setOrder(order);
    return t;
  };
  const std::vector<std::pair<std::string, H5::DataType>> types = {
      {"f16le", half(H5T_ORDER_LE)}, {"f16be", half(H5T_ORDER_BE)},
      {"f32le", H5::PredType::IEEE_F32LE}, {"f32be", H5::PredType::IEEE_F32BE}};
  for (const auto& [name, type] : types) {
    const std::string path = dir.file(name + ".h5");
    {
      H5::H5File f(path, H5F_ACC_TRUNC);
      const hsize_t rows = 6, dims[2] = {6, 5};
      std::vector<int32_t> zeros(rows, 0);
      f.createDataSet("tokens", H5::PredType::STD_I32LE, H5::DataSpace(1, &rows)).write(zeros.data(), H5::PredType::NATIVE_INT32);
      f.createDataSet("bits", H5::PredType::IEEE_F32LE, H5::DataSpace(1, &rows)).write(zeros.data(), H5::PredType::NATIVE_INT32);
      f.createGroup("acts").createDataSet("h", type, H5::DataSpace(2, dims)).write(values.data(), H5::PredType::NATIVE_FLOAT);
    }
    ActivationStore st(path);
    const RowMatrix got = st.block("h", 0, 6);
    float max_diff = 0;
    for (size_t i = 0; i < values.size(); ++i) max_diff = std::max(max_diff, std::abs(got.data()[i] - values[i]));
    EXPECT_EQ(max_diff, 0.0f) << name << ": max |difference| " << max_diff;
  }
}

// h5py (Debian python3-h5py) reads the names, shapes, dtypes, attributes and values the C++ reader sees.
TEST(Capture, H5pyReadsTheDump) {
  if (test::run_command("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with h5py (Debian python3-h5py) is not installed";
  auto m = test::tiny_byte_lm(7, 32);
  const std::string text = sample_text(700);
  test::TempDir dir;
  compress::CodecOptions codec;
  codec.streams = 4;
  const std::string path = dir.file("p.h5");
  dump(m, text, path, codec, {"blocks.1.mlp.hook_post", "blocks.0.attn.hook_z", "blocks.1.attn.hook_pattern"},
       Dtype::kF16, Compression::kGzip);
  ActivationStore st(path);
  const std::string script = dir.file("check.py");
  write_file_atomic(script, R"PY(
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
print("keys", sorted(f.keys()))
print("acts", sorted(f["acts"].keys()))
for k in ["tokens", "stream", "pos", "byte_offset", "bits", "key_pos"]:
    print(k, f[k].dtype, f[k].shape)
for k in sorted(f["acts"].keys()):
    a = f["acts"][k][...]
    print("act", k, a.dtype, a.shape, "%.6f" % float(np.nansum(a.astype(np.float64))))
print("bits_sum %.6f" % float(np.nansum(f["bits"][...].astype(np.float64))))
for k in ["fingerprint", "policy", "dtype", "compression", "source_sha256"]:
    print("attr", k, f.attrs[k])
print("attr window", int(f.attrs["window"]), "streams", int(f.attrs["streams"]), "n_bytes", int(f.attrs["n_bytes"]))
)PY");
  std::string out;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + path, &out), 0) << out;
  auto has = [&](const std::string& line) { return out.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("keys ['acts', 'bits', 'byte_offset', 'key_pos', 'pos', 'stream', 'tokens']")) << out;
  EXPECT_TRUE(has("tokens int32 (704,)")) << out;
  EXPECT_TRUE(has("pos int64 (704,)")) << out;
  EXPECT_TRUE(has("bits float32 (704,)")) << out;
  EXPECT_TRUE(has("key_pos int64 (704, 16)")) << out;
  for (const auto& h : st.hooks()) {
    auto a = st.block(h, 0, st.rows());
    double sum = 0;
    for (int64_t i = 0; i < a.size(); ++i)
      if (!std::isnan(a.data()[i])) sum += a.data()[i];
    std::string shape = "(704";
    for (int64_t d : st.row_shape(h)) shape += ", " + std::to_string(d);
    shape += ")";
    char line[256];
    std::snprintf(line, sizeof line, "act %s float16 %s %.6f", h.c_str(), shape.c_str(), sum);
    EXPECT_TRUE(has(line)) << "missing: " << line << "\n" << out;
  }
  double bits = 0;
  for (float b : st.bits())
    if (!std::isnan(b)) bits += b;
  char line[64];
  std::snprintf(line, sizeof line, "bits_sum %.6f", bits);
  EXPECT_TRUE(has(line)) << line << "\n" << out;
  EXPECT_TRUE(has("attr fingerprint " + m.fingerprint)) << out;
  EXPECT_TRUE(has("attr policy rolling")) << out;
  EXPECT_TRUE(has("attr dtype f16")) << out;
  EXPECT_TRUE(has("attr compression gzip")) << out;
  EXPECT_TRUE(has("attr source_sha256 " + sha256_hex(text))) << out;
  EXPECT_TRUE(has("attr window 16 streams 4 n_bytes 700")) << out;
}

}  // namespace
}  // namespace ccc::analysis
