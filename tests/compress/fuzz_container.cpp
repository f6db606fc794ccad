// libFuzzer target: container parsing and decoding of untrusted .ccc bytes with a tiny byte model.
// Build: cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCCC_FUZZ=ON
//        ninja -C build-fuzz fuzz_container && build-fuzz/tests/fuzz_container -max_total_time=60 corpus/
// Any ccc::Error is an expected rejection; a crash, sanitizer report, hang or other exception is a bug.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compress/context_mixer.h"
#include "compress/lm_codec.h"
#include "model/base/error.h"
#include "model/core/config.h"

namespace {

ccc::model::LoadedModel& tiny_model() {
  static ccc::model::LoadedModel m = [] {
    const auto c = ccc::model::tiny_byte_config();
    ccc::model::LoadedModel lm;
    lm.config = c;
    lm.model = ccc::model::Transformer(c);
    lm.model->init_weights(1);
    lm.model->eval();
    lm.tokenizer = std::make_shared<ccc::model::ByteTokenizer>();
    lm.fingerprint = ccc::model::model_fingerprint(c, lm.model, *lm.tokenizer);
    return lm;
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& m = tiny_model();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ccc::compress::CodecOptions opt;
  opt.threads = 1;
  opt.max_tokens = 4096;
  try {
    size_t off = 0;
    ccc::compress::parse_container(bytes, "fuzz", &off);
  } catch (const ccc::Error&) {
  }
  // Valid headers of every frame mode for this model with the fuzz bytes as payload: exercises the
  // decoders proper (pure groups, a raw group's flag, the mixer, the context models alone, stored).
  static const ccc::compress::Header header = [] {
    ccc::compress::CodecOptions o;
    o.pure = true;
    const std::string valid = ccc::compress::lm_compress(tiny_model(), "fuzzing the decoder: some text", o);
    size_t off = 0;
    return ccc::compress::parse_container(valid, "valid", &off);
  }();
  std::vector<std::string> candidates;
  auto h = header;
  h.group_bytes.assign(h.n_groups, 0);
  h.group_bytes[0] = size;
  h.group_raw.assign(h.n_groups, 0);
  candidates.push_back(ccc::compress::serialize_header(h) + std::string(bytes));
  h.group_raw[0] = 1;  // raw: parsed only when the size is its streams' bytes
  candidates.push_back(ccc::compress::serialize_header(h) + std::string(bytes));
  auto mixed = header;
  mixed.mode = ccc::compress::FrameMode::kMixed;
  mixed.mixer_version = ccc::compress::kMixerVersion;
  mixed.table_bits = ccc::compress::kMinTableBits;
  for (auto& st : mixed.streams) st.n_tokens = st.n_bytes;
  mixed.group_bytes = {size};
  mixed.group_raw.clear();
  candidates.push_back(ccc::compress::serialize_header(mixed) + std::string(bytes));
  ccc::compress::Header ctx;
  ctx.mode = ccc::compress::FrameMode::kContext;
  ctx.original_bytes = 2 * size + 1;
  ctx.mixer_version = ccc::compress::kMixerVersion;
  ctx.table_bits = ccc::compress::kMinTableBits;
  ctx.group_bytes = {size};
  candidates.push_back(ccc::compress::serialize_header(ctx) + std::string(bytes));
  candidates.push_back(ccc::compress::stored_frame(bytes));
  for (std::string_view input : candidates) {
    try {
      ccc::compress::lm_decompress(m, input, "fuzz", opt);
    } catch (const ccc::Error&) {
    }
  }
  try {
    ccc::compress::lm_decompress(m, bytes, "fuzz", opt);
  } catch (const ccc::Error&) {
  }
  return 0;
}
