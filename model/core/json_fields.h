#pragma once
// Typed reading of a JSON object's fields, every error naming the source and the field — the one reader of
// model configs, Hugging Face configs and training configs:
//   "cfg.json: field 'n_head' must be an integer, got 2.5"

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/base/error.h"

namespace ccc::model {

struct JsonFields {
  const nlohmann::json& j;  ///< must outlive the reader
  std::string src;          ///< the error messages' prefix: a file name, or "config"

  /// Present and not null.
  bool has(const char* k) const { return j.is_object() && j.contains(k) && !j[k].is_null(); }
  const nlohmann::json& at(const char* k) const {
    CCC_CHECK(has(k), src, ": missing field '", k, "'");
    return j[k];
  }
  int64_t integer(const char* k) const {
    CCC_CHECK(at(k).is_number_integer(), src, ": field '", k, "' must be an integer, got ", j[k].dump());
    return j[k].get<int64_t>();
  }
  double number(const char* k) const {
    CCC_CHECK(at(k).is_number(), src, ": field '", k, "' must be a number, got ", j[k].dump());
    return j[k].get<double>();
  }
  bool boolean(const char* k) const {
    CCC_CHECK(at(k).is_boolean(), src, ": field '", k, "' must be true or false, got ", j[k].dump());
    return j[k].get<bool>();
  }
  std::string string(const char* k) const {
    CCC_CHECK(at(k).is_string(), src, ": field '", k, "' must be a string, got ", j[k].dump());
    return j[k].get<std::string>();
  }
  std::vector<int64_t> integers(const char* k) const {
    CCC_CHECK(at(k).is_array(), src, ": field '", k, "' must be a list of integers, got ", j[k].dump());
    std::vector<int64_t> v;
    for (const auto& x : j[k]) {
      CCC_CHECK(x.is_number_integer(), src, ": field '", k, "' must be a list of integers, got ", j[k].dump());
      v.push_back(x.get<int64_t>());
    }
    return v;
  }
  std::vector<std::string> strings(const char* k) const {
    CCC_CHECK(at(k).is_array(), src, ": field '", k, "' must be a list of strings, got ", j[k].dump());
    std::vector<std::string> v;
    for (const auto& x : j[k]) {
      CCC_CHECK(x.is_string(), src, ": field '", k, "' must be a list of strings, got ", j[k].dump());
      v.push_back(x.get<std::string>());
    }
    return v;
  }
  // the same with a default for an absent (or null) field
  int64_t integer(const char* k, int64_t dflt) const { return has(k) ? integer(k) : dflt; }
  double number(const char* k, double dflt) const { return has(k) ? number(k) : dflt; }
  bool boolean(const char* k, bool dflt) const { return has(k) ? boolean(k) : dflt; }
  std::string string(const char* k, const std::string& dflt) const { return has(k) ? string(k) : dflt; }
};

}  // namespace ccc::model
