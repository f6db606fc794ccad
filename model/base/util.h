#pragma once
// Small file and hashing helpers shared by the model library and its users.

#include <cstdint>
#include <string>
#include <string_view>

namespace ccc {

/// The cap of the bounded reader for one kind of input: the most bytes a whole-file read accepts.
struct ReadCap {
  uint64_t bytes;
  const char* kind;  ///< named in the error, e.g. "JSON file"
};
/// Configs, component lists, tokenizer JSON, training state (the largest real one, a 128k-entry
/// tokenizer.json, is ~9 MB).
inline constexpr ReadCap kJsonCap{uint64_t{64} << 20, "JSON file"};
/// Text read whole: sources and references, corpora, label CSVs, vocab / merges files.
inline constexpr ReadCap kTextCap{uint64_t{256} << 20, "text input"};
/// Weights read whole (llama2.c .bin, safetensors): the memory available now (memory_available()).
ReadCap weights_cap();

/// The cores this process may run on: its CPU affinity mask (taskset, a cgroup cpuset, mpirun's binding of a
/// rank to its cores), at least 1. What "0 = all cores" means for every thread count of ccc.
int available_cores();

/// Bytes this process can still allocate: the kernel's MemAvailable, lowered by an address-space limit
/// (ulimit -v) less what the process already maps.
uint64_t memory_available();
/// Refuses a run whose memory `estimate` (bytes, from its shapes) exceeds what is available — or
/// `max_memory` when that is > 0 (the --max-memory override) — naming `what`, the estimate and the limit.
void check_memory(uint64_t estimate, uint64_t max_memory, const std::string& what);

/// Reads a whole file as bytes, at most `cap.bytes`: a regular file's size is checked before anything is
/// allocated, a device or FIFO (/dev/zero) as it is read. Throws ccc::Error naming the file when it cannot
/// be read or is over the cap.
std::string read_file(const std::string& path, ReadCap cap = kTextCap);

/// Strict decimal integer: an optional '-', digits, nothing else (no '+', spaces, hex, exponent or
/// fraction), within int64's range. False otherwise.
bool parse_int64(std::string_view s, int64_t* out);
/// The same for unsigned values (no '-').
bool parse_uint64(std::string_view s, uint64_t* out);

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
