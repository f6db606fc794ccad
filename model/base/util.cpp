#include "model/base/util.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/base/error.h"

namespace ccc {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CCC_CHECK(in.good(), "cannot open ", path, ": ", std::strerror(errno));
  std::error_code ec;
  CCC_CHECK(!std::filesystem::is_directory(path, ec), path, " is a directory, expected a file");
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CCC_CHECK(!in.bad(), "error reading ", path);
  return out;
}

void write_file_atomic(const std::string& path, std::string_view bytes, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  CCC_CHECK(overwrite || !fs::exists(path, ec), path, " exists (refusing to overwrite)");
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd() & 0xffffff);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  CCC_CHECK(f != nullptr, "cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    CCC_FAIL("error writing ", path, ": ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    CCC_FAIL("cannot rename ", tmp, " to ", path, ": ", std::strerror(e));
  }
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(const void* data, size_t n) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n); }
std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.hex();
}

}  // namespace ccc
