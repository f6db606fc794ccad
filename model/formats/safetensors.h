#pragma once
// safetensors reader and writer (https://huggingface.co/docs/safetensors): 8-byte LE header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the data region.
// Every field of an untrusted file is validated; errors name the file and the tensor.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ccc::model {

/// One tensor entry of a safetensors header.
struct SafetensorsEntry {
  std::string dtype;           ///< "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte offsets into the data region
};

/// A parsed, validated safetensors file held in memory.
class SafetensorsFile {
 public:
  /// Reads and validates `path`; throws ccc::Error naming the file and entry on any inconsistency.
  static SafetensorsFile open(const std::string& path);
  /// Parses bytes already in memory (`name` is used in error messages). Used by the fuzzer and tests.
  static SafetensorsFile parse(std::string bytes, const std::string& name);

  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& key) const { return entries_.count(key) != 0; }
  /// Returns the tensor as float32 (F32/F16/BF16/F64 are converted), a fresh CPU tensor.
  torch::Tensor get_float(const std::string& key) const;
  /// Returns the tensor in its stored dtype (copy).
  torch::Tensor get(const std::string& key) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string bytes_;
  size_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

/// Storage dtypes for writing.
enum class SaveDtype { kF32, kF16, kBF16 };

/// Serialises tensors to safetensors bytes (keys sorted, header padded to 8 bytes).
std::string safetensors_serialize(const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {},
                                  SaveDtype dtype = SaveDtype::kF32);
/// Writes a safetensors file atomically (temporary name, then rename).
void safetensors_save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, SaveDtype dtype = SaveDtype::kF32);

/// Loads every tensor of a single file or of a sharded checkpoint (`model.safetensors.index.json`
/// with a weight_map) as float32. Duplicate keys across shards are an error.
std::map<std::string, torch::Tensor> load_safetensors_float(const std::string& path);

}  // namespace ccc::model
