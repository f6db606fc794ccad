// libFuzzer target: every untrusted file format a model is loaded from. The first input byte picks the
// format, the rest is the file:
//   0 safetensors bytes (parsed in memory, every tensor read)      3 llama2.c tokenizer.bin (vocab 300)
//   1 Hugging Face tokenizer.json                                   4 config.json of a tiny ccc model directory
//   2 GPT-2 vocab.json and merges.txt, split at the first NUL byte  5 llama2.c checkpoint .bin (tokenizer beside it)
//   6 an activation dump (HDF5) that the rest of the input describes: the ranks, dimensions and types of its
//     tokens / bits / stream / pos columns and acts/ datasets, and its attributes (structure-aware: the bytes
//     of HDF5 itself are libhdf5's to fuzz, the checks on what a dump declares are ours)
// Any ccc::Error is an expected rejection; a crash, sanitizer report, hang or other exception is a bug, and
// so is a loaded tokenizer that claims lossless() but does not restore its input.
// Build: cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCCC_FUZZ=ON
//        ninja -C build-fuzz fuzz_formats
// Seeds: CCC_FUZZ_SEEDS=DIR build-fuzz/tests/fuzz_formats writes one valid file per format into DIR and exits
//        (CCC_FUZZ_VERBOSE=1 prints each rejection, e.g. to check that every seed loads);
//        then build-fuzz/tests/fuzz_formats -max_total_time=300 -rss_limit_mb=4096 DIR

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <H5Cpp.h>
#include <fuzzer/FuzzedDataProvider.h>

#include "analysis/activation_store.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/formats/safetensors.h"
#include "model/formats/tokenizer.h"
#include "model/core/config.h"

namespace fs = std::filesystem;
using namespace ccc::model;
using ccc::read_file;
using ccc::write_file_atomic;

namespace {

enum Format : uint8_t {
  kSafetensors, kTokenizerJson, kGpt2Files, kLlama2cTokenizer, kConfigJson, kLlama2cCheckpoint, kDump, kFormats
};

const std::string& scratch() {
  static const std::string dir = [] {
    std::string t = (fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") + std::string("/ccc-fuzz-XXXXXX");
    if (!mkdtemp(t.data())) std::abort();
    return t;
  }();
  return dir;
}

std::string path(const char* name) { return scratch() + "/" + name; }

void put(const std::string& p, std::string_view bytes) {
  fs::create_directories(fs::path(p).parent_path());
  write_file_atomic(p, bytes);
}

// GPT-2's byte -> printable code point map, as UTF-8.
std::string byte_symbol(int b) {
  int cp = b;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

nlohmann::json tiny_gpt2_vocab() {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[byte_symbol(b)] = b;
  v[byte_symbol(' ') + "t"] = 256;
  v["he"] = 257;
  v[byte_symbol(' ') + "the"] = 258;
  v["<|endoftext|>"] = 259;
  return v;
}
const char* kTinyMerges = "#version: 0.2\n\xC4\xA0 t\nh e\n\xC4\xA0t he\n";

std::string llama2c_tokenizer_bytes(int vocab) {
  std::string out;
  auto i32 = [&](int32_t x) { out.append(reinterpret_cast<const char*>(&x), 4); };
  auto f32 = [&](float x) { out.append(reinterpret_cast<const char*>(&x), 4); };
  i32(8);
  auto piece = [&](const std::string& s, float score) { f32(score); i32(static_cast<int32_t>(s.size())); out += s; };
  piece("<unk>", 0);
  piece("\n<s>\n", 0);
  piece("\n</s>\n", 0);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    piece(buf, 0);
  }
  const char* extra[] = {" ", "e", "t", "h", " t", "he", " the", "a", "o", " a"};
  int n = 259;
  for (const char* s : extra)
    if (n < vocab) piece(s, static_cast<float>(-n)), ++n;
  for (; n < vocab; ++n) piece("x" + std::to_string(n), static_cast<float>(-n));
  return out;
}
constexpr int kLlamaVocab = 300;

// A tiny llama2.c checkpoint: dim 8, hidden 16, 1 layer, 2 heads, vocab 300 (shared classifier), seq_len 8.
std::string llama2c_checkpoint_bytes() {
  const int32_t h[7] = {8, 16, 1, 2, 2, kLlamaVocab, 8};
  std::string out(reinterpret_cast<const char*>(h), sizeof h);
  const int64_t d = 8, hd = 16, V = kLlamaVocab, T = 8, half = 2;
  const int64_t n = V * d + d + 4 * d * d + d + 3 * hd * d + d + 2 * T * half;
  for (int64_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(((i * 2654435761u) % 1000) / 1000.0 - 0.5) * 0.2f;
    out.append(reinterpret_cast<const char*>(&x), 4);
  }
  return out;
}

// The tiny model directory whose config.json the fuzzer replaces (its weights stay valid).
const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = path("model");
    Transformer m(ccc::model::tiny_byte_config());
    m->init_weights(1);
    save_model(d, ccc::model::tiny_byte_config(), m);
    return d;
  }();
  return dir;
}

// Uses a loaded tokenizer the way the compressor does; a lossless tokenizer must restore its input.
void exercise(const Tokenizer& tok) {
  static const std::string text = std::string("the hat\r\n\t\xff\xfe caf\xc3\xa9 ") + '\0' + " <s> \xe2\x82 then";
  const auto ids = tok.encode(text);
  for (auto id : ids)
    if (id < 0 || id >= tok.vocab_size()) std::abort();
  std::string back;
  try {
    back = tok.decode(ids);
  } catch (const ccc::Error&) {
    if (tok.lossless()) std::abort();
    return;
  }
  if (tok.lossless() && back != text) std::abort();
  const auto offsets = tok.byte_offsets(ids);
  if (offsets.size() != ids.size()) std::abort();
  for (int64_t id = 0; id < std::min<int64_t>(tok.vocab_size(), 400); ++id) (void)tok.token_bytes(id);
}

// Writes the dump the fuzz bytes describe (every dataset chunked and unwritten: declared sizes cost no disk).
void write_dump(const std::string& path, FuzzedDataProvider& p) {
  H5::H5File f(path, H5F_ACC_TRUNC);
  H5::Group root = f.openGroup("/");
  const hsize_t rows = p.ConsumeIntegralInRange<hsize_t>(0, 40);
  auto dims = [&](bool rows_first, int max_rank) {
    const int rank = p.ConsumeIntegralInRange<int>(0, max_rank);
    std::vector<hsize_t> d;
    for (int k = 0; k < rank; ++k) {
      if (k == 0 && rows_first && p.ConsumeBool()) d.push_back(rows);
      else d.push_back(p.ConsumeBool() ? p.ConsumeIntegralInRange<hsize_t>(0, 8) : p.ConsumeIntegral<uint32_t>());
    }
    return d;
  };
  auto type = [&]() -> H5::DataType {
    auto half = [](H5T_order_t order) {
      H5::FloatType h(H5::PredType::IEEE_F32LE);
      h.setFields(15, 10, 5, 0, 10);
      h.setSize(2);
      h.setEbias(15);
      h.setOrder(order);
      return h;
    };
    switch (p.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: return H5::PredType::NATIVE_FLOAT;
      case 1: return H5::PredType::NATIVE_INT32;
      case 2: return H5::PredType::NATIVE_INT64;
      case 3: return H5::PredType::NATIVE_DOUBLE;
      case 4: return half(H5T_ORDER_LE);
      case 5: return half(H5T_ORDER_BE);  // h5py's '>f2'
      case 6: return H5::PredType::IEEE_F32BE;
      default: return H5::StrType(H5::PredType::C_S1, 8);
    }
  };
  auto make = [&](H5::Group& where, const std::string& name, std::vector<hsize_t> d) {
    // names that lead outside the file: an external link (to a file that may be a FIFO), a soft link
    switch (p.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        H5Lcreate_external((scratch() + "/other.h5").c_str(), "/x", where.getId(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
        return;
      case 1:
        H5Lcreate_soft("/tokens", where.getId(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
        return;
      default:
        break;
    }
    const H5::DataType t = type();
    if (!d.empty() && p.ConsumeIntegralInRange<int>(0, 15) == 0) {  // raw data kept in an external file
      double n = static_cast<double>(t.getSize());
      for (hsize_t x : d) n *= static_cast<double>(x);
      if (n > 0 && n <= 65536) {
        H5::DSetCreatPropList props;
        props.setExternal((scratch() + "/raw.bin").c_str(), 0, static_cast<hsize_t>(n));
        where.createDataSet(name, t, H5::DataSpace(static_cast<int>(d.size()), d.data()), props);
        return;
      }
    }
    if (d.empty()) {
      where.createDataSet(name, t, H5::DataSpace(H5S_SCALAR));
      return;
    }
    std::vector<hsize_t> chunk(d.size(), 1), maxd(d.size(), H5S_UNLIMITED);
    H5::DSetCreatPropList props;
    props.setChunk(static_cast<int>(chunk.size()), chunk.data());
    auto ds = where.createDataSet(name, t, H5::DataSpace(static_cast<int>(d.size()), d.data(), maxd.data()), props);
    double n = 1;
    for (hsize_t x : d) n *= static_cast<double>(x);
    if (t.getClass() != H5T_STRING && n <= 4096 && p.ConsumeBool()) {  // written (else hollow)
      std::vector<uint8_t> bytes(static_cast<size_t>(n) * t.getSize());
      for (auto& b : bytes) b = p.ConsumeIntegral<uint8_t>();
      ds.write(bytes.data(), t);
    }
  };
  for (const char* column : {"tokens", "bits", "stream", "pos", "byte_offset"})
    if (p.ConsumeIntegralInRange<int>(0, 5) > 0) make(root, column, dims(true, 2));
  if (p.ConsumeBool()) {
    H5::Group acts = f.createGroup("acts");
    const int hooks = p.ConsumeIntegralInRange<int>(0, 3);
    for (int h = 0; h < hooks; ++h) make(acts, "blocks." + std::to_string(h) + ".hook_resid_pre", dims(true, 4));
  }
  for (const char* a : {"fingerprint", "streams", "window", "source"}) {
    if (!p.ConsumeBool()) continue;
    if (p.ConsumeBool()) {
      H5::StrType t(H5::PredType::C_S1, H5T_VARIABLE);
      root.createAttribute(a, t, H5::DataSpace(H5S_SCALAR)).write(t, p.ConsumeRandomLengthString(40));
    } else {
      const int64_t v = p.ConsumeIntegral<int64_t>();
      root.createAttribute(a, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR)).write(H5::PredType::NATIVE_INT64, &v);
    }
  }
}

// Opens a dump the way the analysis commands do and reads everything it offers.
void exercise_dump(const std::string& path, uint64_t text_bytes) {
  ccc::analysis::ActivationStore st(path);
  st.check_text_size(text_bytes);  // the rows a text of that size can give (units checks it before reading)
  const auto rows = static_cast<size_t>(st.rows());
  if (st.tokens().size() != rows || st.bits().size() != rows) std::abort();
  (void)st.streams();
  (void)st.positions();
  (void)st.byte_offsets();
  (void)st.attr("fingerprint");
  (void)st.attr_int("streams");
  for (const auto& h : st.hooks()) {
    int64_t elems = 1;
    for (auto d : st.row_shape(h)) elems *= d;
    const int64_t n = std::min<int64_t>(st.rows(), 8);
    const auto b = st.block(h, 0, n);
    if (b.rows() != n || b.cols() != elems) std::abort();
  }
}

void write_seeds(const std::string& dir) {
  fs::create_directories(dir);
  auto seed = [&](Format f, const std::string& body) {
    write_file_atomic(dir + "/seed-" + std::to_string(f), std::string(1, static_cast<char>(f)) + body);
  };
  std::map<std::string, torch::Tensor> t = {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                                            {"b", torch::ones({4})}, {"empty", torch::zeros({0, 2})}};
  seed(kSafetensors, safetensors_serialize(t, {{"format", "pt"}}, SaveDtype::kF16));
  nlohmann::json merges = nlohmann::json::array({byte_symbol(' ') + " t", nlohmann::json::array({"h", "e"})});
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", tiny_gpt2_vocab()}, {"merges", merges}}},
                       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  seed(kTokenizerJson, tj.dump());
  seed(kGpt2Files, tiny_gpt2_vocab().dump() + std::string(1, '\0') + kTinyMerges);
  seed(kLlama2cTokenizer, llama2c_tokenizer_bytes(kLlamaVocab));
  seed(kConfigJson, read_file(model_dir() + "/config.json"));
  seed(kLlama2cCheckpoint, llama2c_checkpoint_bytes());
  // dumps are described by FuzzedDataProvider choices: any bytes describe one; a few starting points
  std::mt19937 rng(7);
  for (int i = 0; i < 4; ++i) {
    std::string d(64, '\0');
    for (auto& c : d) c = static_cast<char>(rng());
    write_file_atomic(dir + "/seed-dump-" + std::to_string(i), std::string(1, static_cast<char>(kDump)) + d);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  H5::Exception::dontPrint();
  if (const char* dir = std::getenv("CCC_FUZZ_SEEDS")) {
    write_seeds(dir);
    std::fprintf(stderr, "fuzz_formats: seeds written to %s\n", dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto format = static_cast<Format>(data[0] % kFormats);
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (format) {
      case kSafetensors: {
        auto f = SafetensorsFile::parse(std::string(body), "fuzz.safetensors");
        for (const auto& [name, e] : f.entries()) (void)f.get_float(name);
        break;
      }
      case kTokenizerJson:
        put(path("tokenizer.json"), body);
        exercise(*load_hf_tokenizer_json(path("tokenizer.json")));
        break;
      case kGpt2Files: {
        const size_t nul = body.find('\0');
        put(path("vocab.json"), body.substr(0, nul));
        put(path("merges.txt"), nul == std::string_view::npos ? std::string_view() : body.substr(nul + 1));
        exercise(*load_gpt2_tokenizer(path("vocab.json"), path("merges.txt")));
        break;
      }
      case kLlama2cTokenizer:
        put(path("tok.bin"), body);
        exercise(*load_llama2c_tokenizer(path("tok.bin"), kLlamaVocab));
        break;
      case kConfigJson: {
        put(model_dir() + "/config.json", body);
        auto m = load_model(model_dir());
        torch::NoGradGuard g;
        const int64_t n = std::min<int64_t>(4, m.config.n_ctx);
        auto logits = m.model->forward(torch::full({1, n}, m.tokenizer->bos_id(), torch::kLong));
        if (logits.size(-1) != m.config.d_vocab_out) std::abort();
        break;
      }
      case kDump: {
        FuzzedDataProvider p(reinterpret_cast<const uint8_t*>(body.data()), body.size());
        try {
          write_dump(path("dump.h5"), p);
        } catch (const H5::Exception&) {
          break;  // libhdf5 refused to write what the bytes describe (not under test)
        }
        exercise_dump(path("dump.h5"), p.ConsumeIntegralInRange<uint64_t>(0, 64));  // only ccc::Error may leave the store
        break;
      }
      case kLlama2cCheckpoint: {
        static const bool tok_written = (put(path("ckpt/tokenizer.bin"), llama2c_tokenizer_bytes(kLlamaVocab)), true);
        (void)tok_written;
        put(path("ckpt/model.bin"), body);
        auto m = load_model(path("ckpt/model.bin"));
        exercise(*m.tokenizer);
        break;
      }
      default:
        break;
    }
  } catch (const ccc::Error& e) {
    static const bool verbose = std::getenv("CCC_FUZZ_VERBOSE") != nullptr;  // e.g. to check the seeds load
    if (verbose) std::fprintf(stderr, "format %d rejected: %s\n", static_cast<int>(format), e.what());
  }
  return 0;
}
