#pragma once
// Reading a dump written by ActivationCapture: the hooks it holds, the per-row metadata, and any hook's
// activations in blocks of rows as Eigen matrices (float32, one row per position, columns = the flattened
// activation), so analyses stream over files larger than memory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace ccc::analysis {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class ActivationStore {
 public:
  /// Opens `path` read-only; throws ccc::Error naming it if it is not a ccc dump.
  explicit ActivationStore(const std::string& path);
  ~ActivationStore();

  int64_t rows() const { return rows_; }
  /// Hook names under acts/, sorted.
  const std::vector<std::string>& hooks() const { return hooks_; }
  /// Shape of one row of a hook's activation, e.g. {n_heads, d_head}.
  std::vector<int64_t> row_shape(const std::string& hook) const;
  /// Rows [first, first + n) of a hook as an n × (row elements) float matrix (f16 converted).
  RowMatrix block(const std::string& hook, int64_t first, int64_t n) const;
  /// Whole metadata columns.
  std::vector<int32_t> tokens() const;
  std::vector<int32_t> streams() const;
  std::vector<int64_t> positions() const;
  std::vector<int64_t> byte_offsets() const;
  std::vector<float> bits() const;
  /// A root string attribute ("" when absent) and an integer one (−1 when absent).
  std::string attr(const std::string& name) const;
  int64_t attr_int(const std::string& name) const;
  const std::string& path() const { return path_; }
  /// Checks that the dump can be of a text of `text_bytes` bytes: every non-BOS row is a coded token of at
  /// least one byte and every BOS row starts a segment, so rows <= 2 * text_bytes + 1 (and the `n_bytes`
  /// attribute, when present, equals text_bytes). A forged row count is refused before any column is read.
  void check_text_size(uint64_t text_bytes) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int64_t rows_ = 0;
  std::vector<std::string> hooks_;
};

}  // namespace ccc::analysis
