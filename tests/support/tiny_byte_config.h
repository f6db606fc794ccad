#pragma once
// The tiny byte-level model config the fuzz targets build (header-only: fuzzers do not link GoogleTest or
// test_support.cpp). 1 layer x 16 wide, 2 heads of 8, MLP 32, context 16, tied embedding.

#include "model/core/config.h"

namespace ccc::test {

inline model::ModelConfig tiny_byte_config() {
  model::ModelConfig c;  // defaults: arch ccc, 257 input ids (bytes + BOS 256), 256 outputs
  c.d_model = 16;
  c.n_layers = 1;
  c.n_heads = c.n_kv_heads = 2;
  c.d_head = 8;
  c.d_mlp = 32;
  c.n_ctx = 16;
  c.tied_embed = true;
  return c;
}

}  // namespace ccc::test
