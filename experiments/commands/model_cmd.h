#pragma once
// `ccc info`, `ccc hooks`, `ccc generate`, `ccc bits`, `ccc init`: the model commands.

#include <cstdint>
#include <string>

#include "analysis/positions.h"

#include "model/formats/loader.h"

namespace ccc::experiments {

/// The model a command loads: -m (default: the shipped default model) and --tokenizer (overrides discovery).
struct ModelArgs {
  std::string model, tokenizer;
  model::LoadedModel load() const;
};

struct GenerateArgs {
  std::string prompt;
  int64_t n = 64;
  double temperature = 0;
  uint64_t seed = 0;
};

struct BitsArgs {
  std::string file;
  bool json = false;
  int64_t window = 0, stride = 0;
  int64_t streams = -1;  ///< unset: one stream, full-sequence path; 0 = automatic (as compress); B = B segments
  bool strided = false;
  bool quiet = false;
  /// Also report the bits over these positions (scored as with --streams, one stream unless given).
  analysis::PositionSpec positions;
};

struct InitArgs {
  std::string config, out;
  uint64_t seed = 0;
  bool force = false;
};

/// Architecture, parameters, context, vocabulary and fingerprint (one JSON object with `json`).
void run_info(const ModelArgs& a, bool json);
/// Every hook name with its shape.
void run_hooks(const ModelArgs& a);
/// Continues a prompt (greedy at temperature 0) and prints the text.
void run_generate(const ModelArgs& a, const GenerateArgs& g);
/// Bits of a file: whole-sequence windows, or the compressor's segmentation with --streams.
void run_bits(const ModelArgs& a, const BitsArgs& o);
/// Writes a randomly initialised ccc model from a model config.
void run_init(const InitArgs& o);

}  // namespace ccc::experiments
