#pragma once
// An HDF5 file of row datasets (one row per model position), written in row ranges and published
// atomically: it lives under a temporary name beside the target until commit() renames it, and is
// removed if the writer is destroyed first (kill -9 leaves only the temporary name, never the target).
// Readable by h5py; float16 datasets use h5py's IEEE half layout.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace H5 {
class Exception;
}

namespace ccc::analysis {

enum class Dtype { kI32, kI64, kF16, kF32 };
/// none; gzip = shuffle + deflate level 4; fast = shuffle + deflate level 1 (HDF5 has no built-in LZF:
/// this is the quick setting readable everywhere without plugins).
enum class Compression { kNone, kGzip, kFast };
Compression parse_compression(const std::string& s);  ///< "none" | "gzip" | "fast"; anything else is an error
std::string to_string(Compression c);

class H5Rows {
 public:
  /// Creates the temporary file. Refuses an existing `path` unless `force` (which replaces it at commit).
  /// Under mpirun (model/base/dist.h): with `shared`, every rank opens the one file through parallel HDF5
  /// (MPI-IO) — create(), attr() and commit() are then collective (all ranks, same arguments, same order),
  /// write() is each rank's own rows — and compression must be kNone; without it rank 0 alone writes the
  /// file and the other ranks' calls do nothing.
  H5Rows(const std::string& path, bool force, Compression compression, bool shared = false);
  ~H5Rows();
  H5Rows(const H5Rows&) = delete;
  H5Rows& operator=(const H5Rows&) = delete;

  /// A dataset of `rows` rows of shape `row_shape` (may be empty: a scalar per row), chunked along rows
  /// (about 1 MiB per chunk). Intermediate groups in `name` ("acts/…") are created.
  void create(const std::string& name, Dtype type, const std::vector<int64_t>& row_shape, int64_t rows);
  /// Writes rows [first, first + n) of `name` from contiguous data of its type.
  void write(const std::string& name, int64_t first, int64_t n, const void* data);
  void attr(const std::string& name, const std::string& value);  ///< root attribute (variable-length string)
  void attr(const std::string& name, int64_t value);
  /// Flushes, closes and renames to the target path.
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  [[noreturn]] void fail_write(const std::string& what, const H5::Exception& e);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, tmp_;
  Compression compression_;
  bool committed_ = false;
  int temp_slot_ = -1;  ///< register_temp's slot of tmp_
  bool write_failed_ = false;  ///< a write reached HDF5 and failed: the file cannot be closed normally
  bool force_ = false;  ///< replace an existing file at commit (else a no-replace rename)
  bool shared_ = false;  ///< written by every rank through MPI-IO
};

}  // namespace ccc::analysis
