#pragma once
// Small file and hashing helpers shared by the model library and its users.

#include <cstdint>
#include <string>
#include <string_view>

namespace ccc {

/// Reads a whole file as bytes; throws ccc::Error naming the file when it cannot be read.
std::string read_file(const std::string& path);

/// Writes bytes to `path` atomically: a temporary name in the same directory, fsync, then rename.
/// Never leaves a partial file at `path`; an existing `path` is replaced only if `overwrite`.
void write_file_atomic(const std::string& path, std::string_view bytes, bool overwrite = true);

/// Incremental SHA-256 (OpenSSL EVP underneath). hex() finalises.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex();

 private:
  void* ctx_;
};

std::string sha256_hex(std::string_view bytes);

}  // namespace ccc
