#pragma once
// Loading models from checkpoint formats into the canonical Transformer:
//   - ccc model directories (config.json with model_type "ccc" + model.safetensors), written by save_model;
//   - Hugging Face directories: config.json model_type gpt2 / gpt_neox / llama + model.safetensors
//     (or a sharded model.safetensors.index.json);
//   - llama2.c checkpoints (.bin, version-0 header).

#include <memory>
#include <string>

#include "model/core/config.h"
#include "model/formats/safetensors.h"
#include "model/formats/tokenizer.h"
#include "model/core/transformer.h"

namespace ccc::model {

/// A model ready to run: weights, tokenizer and identity.
struct LoadedModel {
  ModelConfig config;
  Transformer model{nullptr};
  std::shared_ptr<Tokenizer> tokenizer;
  std::string source;       ///< path it was loaded from
  std::string format;       ///< "ccc", "hf-gpt2", "hf-gpt_neox", "hf-llama", "llama2c"
  std::string fingerprint;  ///< sha256 over config + weights (fp32, canonical order) + tokenizer
};

/// Loads `path` (a directory or a llama2.c .bin). `tokenizer_path` overrides tokenizer discovery:
/// by default a directory's own tokenizer files are used, a ccc byte model gets ByteTokenizer, and a
/// llama2.c .bin looks for tokenizer.bin beside it. Throws ccc::Error naming the file on any problem.
LoadedModel load_model(const std::string& path, const std::string& tokenizer_path = "");

/// Reads a Hugging Face config.json object into a ModelConfig (gpt2, gpt_neox, llama).
ModelConfig config_from_hf(const nlohmann::json& j, const std::string& source);

/// Maps a Hugging Face state dict (either key layout) to canonical names; legacy buffers are dropped,
/// any other unknown key or a missing one is an error naming it.
std::map<std::string, torch::Tensor> canonical_from_hf(const ModelConfig& cfg, std::map<std::string, torch::Tensor> sd,
                                                       const std::string& source);

/// Writes a ccc model directory (config.json + model.safetensors) atomically: files are written under
/// temporary names and renamed. Readable by Python's safetensors.
void save_model(const std::string& dir, const ModelConfig& cfg, const Transformer& model,
                SaveDtype dtype = SaveDtype::kF32, const nlohmann::json& extra_config = {});

/// sha256 hex over the config JSON, each canonical tensor (name, shape, fp32 bytes) and the tokenizer.
std::string model_fingerprint(const ModelConfig& cfg, const Transformer& model, const Tokenizer& tok);

}  // namespace ccc::model
