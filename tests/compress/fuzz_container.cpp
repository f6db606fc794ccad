// libFuzzer target: container parsing and decoding of untrusted .ccc bytes with a tiny byte model.
// Build: cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCCC_FUZZ=ON
//        ninja -C build-fuzz fuzz_container && build-fuzz/tests/fuzz_container -max_total_time=60 corpus/
// Any ccc::Error is an expected rejection; a crash, sanitizer report, hang or other exception is a bug.

#include <cstdint>
#include <string_view>

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
  // A valid header for this model with the fuzz bytes as payload: exercises the decoder proper.
  static const std::string valid = ccc::compress::lm_compress(m, "fuzzing the decoder: some text", {});
  static const ccc::compress::Header header = [] {
    size_t off = 0;
    return ccc::compress::parse_container(valid, "valid", &off);
  }();
  auto h = header;
  h.group_bytes.assign(h.n_groups, 0);
  h.group_bytes[0] = size;
  const std::string candidate = ccc::compress::serialize_header(h) + std::string(bytes);
  for (std::string_view input : {bytes, std::string_view(candidate)}) {
    try {
      ccc::compress::lm_decompress(m, input, "fuzz", opt);
    } catch (const ccc::Error&) {
    }
  }
  return 0;
}
