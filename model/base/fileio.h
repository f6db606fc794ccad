#pragma once
// Output-file helpers behind write_file_atomic: temporary names that fit the file system's name limit,
// and the kinds of existing outputs the tools write into directly rather than replace.

#include <string>
#include <string_view>

namespace ccc {

/// A temporary name in the directory of `path` for building it before the final rename: hidden,
/// ".NAME~ccc<pid>-<4 hex digits>", at most 255 bytes long even when `path`'s own name is (NAME is
/// shortened to fit).
std::string temp_path_for(const std::string& path);

/// Removes temporaries of `path` (temp_path_for's pattern: files, and OutputDir's directories) left by writers that no longer run (killed
/// mid-write; their pid is gone). Returns how many were removed. Called before every new write.
int remove_stale_temps(const std::string& path);

/// Named temporaries removed if the process is ended by SIGINT, SIGTERM or SIGHUP: the handler (installed
/// on the first registration) unlinks every registered path, then lets the signal end the process as it
/// would have. For temporaries that need a name while written (HDF5 files); OutputFile needs none
/// (O_TMPFILE). At most 64 at once; returns a slot for unregister_temp (−1 when full: then only
/// remove_stale_temps cleans up).
int register_temp(const std::string& path);
void unregister_temp(int slot);

/// A multi-file output (a report directory, a trained model) built whole under a private temporary
/// directory beside `dir` and published by commit(): when `dir` does not exist it appears at once
/// (no-replace rename of the directory); when it does, each file is renamed into it (over an existing file
/// only when `overwrite`, else the commit fails naming it). Destroying an uncommitted OutputDir removes the
/// temporary; one left by a killed process is removed by the next writer (remove_stale_temps).
/// Under mpirun (model/base/dist.h) only rank 0 publishes: the other ranks' OutputDir is a private
/// temporary removed at commit, and their OutputFile / write_file_atomic write to /dev/null.
class OutputDir {
 public:
  OutputDir(const std::string& dir, bool overwrite);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  /// Where to write `name` (a file of the finished directory) now.
  std::string file(const std::string& name) const;
  const std::string& temp_dir() const { return tmp_; }
  const std::string& dir() const { return dir_; }
  void commit();

 private:
  std::string dir_, tmp_;
  bool overwrite_ = false, committed_ = false;
};

/// Renames the finished temporary `tmp` to `path`: over an existing `path` only when `overwrite`, else by a
/// no-replace rename (renameat2 RENAME_NOREPLACE, or link + unlink where the file system lacks it), so a
/// file another writer created meanwhile is kept and this is an error naming `path`. On failure the
/// temporary is removed. Throws ccc::Error.
void publish_file(const std::string& tmp, const std::string& path, bool overwrite);

/// True when `path` exists and is a character device or a FIFO (e.g. /dev/null, a named pipe): outputs
/// are written into such files directly, as gzip / xz / zstd do, never replaced by a regular file.
/// Throws ccc::Error naming `path` when it exists as a directory, a block device or a socket.
bool is_stream_output(const std::string& path);

/// An output written piece by piece that appears whole or not at all: a regular file is built under a
/// temporary (O_TMPFILE where available) and renamed over `path` by commit() — without `overwrite` by a
/// no-replace rename, so of two writers racing to one new name the second fails ("exists") instead of
/// silently replacing the first one's output; destroying an uncommitted
/// OutputFile removes the temporary (an error mid-way leaves no partial file). "-" is standard output and
/// character devices / FIFOs are written directly (what reached them stays). Throws ccc::Error naming `path`.
class OutputFile {
 public:
  OutputFile(const std::string& path, bool overwrite);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  void write(std::string_view bytes);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool overwrite_ = false, direct_ = false, named_ = false, committed_ = false;
};

}  // namespace ccc
