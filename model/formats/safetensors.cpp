#include "model/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::model {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit

int64_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

torch::Dtype torch_dtype(const std::string& dtype, const std::string& ctx) {
  if (dtype == "F64") return torch::kFloat64;
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "I64") return torch::kInt64;
  if (dtype == "I32") return torch::kInt32;
  if (dtype == "I16") return torch::kInt16;
  if (dtype == "I8") return torch::kInt8;
  if (dtype == "U8") return torch::kUInt8;
  if (dtype == "BOOL") return torch::kBool;
  CCC_FAIL(ctx, ": dtype ", dtype, " cannot be converted to a tensor");
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) { return parse(read_file(path, weights_cap()), path); }

SafetensorsFile SafetensorsFile::parse(std::string bytes, const std::string& name) {
  SafetensorsFile f;
  f.path_ = name;
  f.bytes_ = std::move(bytes);
  const std::string& b = f.bytes_;
  CCC_CHECK(b.size() >= 8, name, ": not a safetensors file (", b.size(), " bytes, need at least 8 for the header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(b[i]);
  CCC_CHECK(n <= kMaxHeaderBytes, name, ": header length ", n, " exceeds the 100 MiB limit (corrupt file?)");
  CCC_CHECK(n <= b.size() - 8, name, ": header length ", n, " runs past the end of the file (", b.size(),
            " bytes): truncated or not safetensors");
  CCC_CHECK(n >= 2, name, ": header length ", n, " is too small for a JSON object");
  f.data_start_ = 8 + n;
  const uint64_t data_size = b.size() - f.data_start_;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(b.begin() + 8, b.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(name, ": header is not valid JSON: ", e.what());
  }
  CCC_CHECK(header.is_object(), name, ": header must be a JSON object");
  std::vector<std::pair<uint64_t, std::string>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "__metadata__") {
      CCC_CHECK(v.is_object(), name, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        CCC_CHECK(m.value().is_string(), name, ": __metadata__ value for '", m.key(), "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string ctx = name + ": tensor '" + key + "'";
    CCC_CHECK(v.is_object(), ctx, ": entry must be an object");
    CCC_CHECK(v.contains("dtype") && v["dtype"].is_string(), ctx, ": missing string field dtype");
    CCC_CHECK(v.contains("shape") && v["shape"].is_array(), ctx, ": missing array field shape");
    CCC_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2, ctx,
              ": data_offsets must be [begin, end]");
    SafetensorsEntry e;
    e.dtype = v["dtype"].get<std::string>();
    int64_t esize = dtype_size(e.dtype);
    CCC_CHECK(esize > 0, ctx, ": unknown dtype '", e.dtype, "'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      CCC_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), ctx,
                ": shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      CCC_CHECK(dim <= (uint64_t{1} << 48), ctx, ": shape entry ", dim, " is absurdly large");
      CCC_CHECK(dim == 0 || numel <= (uint64_t{1} << 48) / dim, ctx, ": shape is absurdly large");
      numel *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto& o : v["data_offsets"])
      CCC_CHECK(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0), ctx,
                ": data_offsets must be non-negative integers");
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    CCC_CHECK(e.begin <= e.end, ctx, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
    CCC_CHECK(e.end <= data_size, ctx, ": data_offsets [", e.begin, ", ", e.end, "] run past the data region (",
              data_size, " bytes): file truncated?");
    CCC_CHECK(e.end - e.begin == numel * static_cast<uint64_t>(esize), ctx, ": ", e.end - e.begin,
              " bytes of data but dtype ", e.dtype, " with shape of ", numel, " elements needs ", numel * esize);
    spans.emplace_back(e.begin, key);
    f.entries_.emplace(key, std::move(e));
  }
  // No two tensors with data may share a byte: sorted by begin, each must start at or after the furthest
  // end so far (empty tensors hold no bytes and are skipped, so they cannot hide an overlap).
  std::sort(spans.begin(), spans.end());
  const std::string* furthest = nullptr;
  for (const auto& [begin, key] : spans) {
    const auto& cur = f.entries_.at(key);
    if (cur.begin == cur.end) continue;
    if (furthest != nullptr) {
      const auto& prev = f.entries_.at(*furthest);
      CCC_CHECK(cur.begin >= prev.end, name, ": tensors '", *furthest, "' and '", key, "' overlap (data_offsets [",
                prev.begin, ", ", prev.end, "] and [", cur.begin, ", ", cur.end, "])");
    }
    if (furthest == nullptr || cur.end > f.entries_.at(*furthest).end) furthest = &key;
  }
  return f;
}

torch::Tensor SafetensorsFile::get(const std::string& key) const {
  auto it = entries_.find(key);
  CCC_CHECK(it != entries_.end(), path_, ": no tensor named '", key, "'");
  const auto& e = it->second;
  auto dt = torch_dtype(e.dtype, path_ + ": tensor '" + key + "'");
  auto t = torch::empty(e.shape, torch::TensorOptions().dtype(dt));
  if (e.end > e.begin) std::memcpy(t.data_ptr(), bytes_.data() + data_start_ + e.begin, e.end - e.begin);
  return t;
}

torch::Tensor SafetensorsFile::get_float(const std::string& key) const {
  auto t = get(key);
  const auto& dtype = entries_.at(key).dtype;
  CCC_CHECK(dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64", path_, ": tensor '", key,
            "' has dtype ", dtype, ", expected a floating type (F32, F16, BF16)");
  return t.to(torch::kFloat32);
}

std::string safetensors_serialize(const std::map<std::string, torch::Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata, SaveDtype dtype) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  const char* dname = dtype == SaveDtype::kF32 ? "F32" : dtype == SaveDtype::kF16 ? "F16" : "BF16";
  torch::Dtype tdt = dtype == SaveDtype::kF32 ? torch::kFloat32 : dtype == SaveDtype::kF16 ? torch::kFloat16 : torch::kBFloat16;
  std::vector<torch::Tensor> payload;
  uint64_t offset = 0;
  for (const auto& [key, t] : tensors) {
    CCC_CHECK(t.is_floating_point(), "safetensors: tensor '", key, "' is not floating point");
    auto c = t.detach().to(torch::kCPU).to(tdt).contiguous();
    uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[key] = {{"dtype", dname}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    payload.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& c : payload)
    out.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * c.element_size());
  return out;
}

void safetensors_save(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata, SaveDtype dtype) {
  write_file_atomic(path, safetensors_serialize(tensors, metadata, dtype));
}

std::map<std::string, torch::Tensor> load_safetensors_float(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  auto load_one = [&](const std::string& file) {
    auto f = SafetensorsFile::open(file);
    for (const auto& [key, e] : f.entries()) {
      CCC_CHECK(!out.count(key), file, ": tensor '", key, "' appears in more than one shard");
      const bool is_float = e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16" || e.dtype == "F64";
      out[key] = is_float ? f.get_float(key) : f.get(key);
    }
  };
  const std::string suffix = ".index.json";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    nlohmann::json idx;
    try {
      idx = nlohmann::json::parse(read_file(path, kJsonCap));
    } catch (const nlohmann::json::exception& e) {
      CCC_FAIL(path, ": not valid JSON: ", e.what());
    }
    CCC_CHECK(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(), path,
              ": missing object 'weight_map'");
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      CCC_CHECK(it.value().is_string(), path, ": weight_map['", it.key(), "'] is not a file name");
      auto shard = it.value().get<std::string>();
      CCC_CHECK(shard.find('/') == std::string::npos && shard.find("..") == std::string::npos, path,
                ": shard name '", shard, "' must be a plain file name");
      by_file[shard].push_back(it.key());
    }
    auto dir = std::filesystem::path(path).parent_path();
    for (const auto& [shard, keys] : by_file) {
      load_one((dir / shard).string());
      for (const auto& k : keys)
        CCC_CHECK(out.count(k), path, ": weight_map names '", k, "' in ", shard, " but that shard lacks it");
    }
    CCC_CHECK(out.size() == idx["weight_map"].size(), path, ": shards hold tensors not listed in weight_map");
    return out;
  }
  load_one(path);
  return out;
}

}  // namespace ccc::model
