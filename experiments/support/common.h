#pragma once
// Small helpers shared by the experiment and CLI files.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccc::experiments {

/// The shipped default model: $CCC_MODEL, else data/models/default in the source tree.
std::string default_model_path();

/// An input read piece by piece: a regular file, a device or FIFO, or standard input ("-"). Errors name it.
class InputStream {
 public:
  explicit InputStream(const std::string& path);
  ~InputStream();
  InputStream(const InputStream&) = delete;
  InputStream& operator=(const InputStream&) = delete;
  /// Appends up to n bytes to *out (fewer only at the end of the input); returns how many.
  size_t read(size_t n, std::string* out);
  uint64_t size() const { return size_; }  ///< 0 when unknown (not a regular file)
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

/// The most bytes read_input accepts (commands that score their input whole).
constexpr size_t kMaxWholeInput = size_t{256} << 20;

/// The whole of `path` as bytes; "-" reads standard input. Throws ccc::Error naming the file when it
/// cannot be read or holds more than kMaxWholeInput bytes (e.g. /dev/zero).
std::string read_input(const std::string& path);

/// Runs `cmd` through /bin/sh and captures its standard output into *out; returns pclose's status
/// (-1 when it could not start).
int run_capture(const std::string& cmd, std::string* out);

/// The held-out split of every corpus present in `corpora_dir` ("" = default) as (name, bytes); throws
/// ccc::Error when there is none.
std::vector<std::pair<std::string, std::string>> held_out_sources(const std::string& corpora_dir);

/// Seconds since `t0` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t0);

/// The classic compressors ccc is compared with: label and the shell command that compresses standard input
/// to standard output ("" for zpaq, which archives a file).
const std::vector<std::pair<std::string, std::string>>& classic_compressors();

/// The size in bytes of `bytes` compressed by the classic compressor `label` (one of classic_compressors),
/// run on a file at `tmp` (written here, overwritten); −1 when it is not installed or fails.
int64_t classic_compressed_size(const std::string& label, const std::string& bytes, const std::string& tmp);

/// `dir`, or the default corpus directory (model::default_corpus_dir of the source tree) when empty.
std::string corpora_dir_or_default(const std::string& dir);

/// `s` as a single-quoted gnuplot string ('' stands for a quote inside): safe for any file name.
std::string gp_quote(const std::string& s);

/// `s` as one single-quoted /bin/sh word.
std::string sh_quote(const std::string& s);

/// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);

/// `s` as one CSV field: quoted (with doubled quotes) when it holds a comma, quote or line break.
std::string csv_field(const std::string& s);

/// "x86_64, <cpu model>, N cores" of this machine (for benchmark records).
std::string machine_description();

/// A gnuplot rendering done in a private temporary directory (mkdtemp under $TMPDIR, removed with its
/// contents on destruction): the data files and the PNG gnuplot writes have unpredictable names nobody
/// else can plant a link at, and the finished PNG reaches its target through write_file_atomic (a FIFO or
/// character device is written into, never replaced; links at the target are replaced, never followed;
/// an existing file is kept unless `overwrite`).
class Plot {
 public:
  Plot();
  ~Plot();
  Plot(const Plot&) = delete;
  Plot& operator=(const Plot&) = delete;
  /// Writes `bytes` as the data file `name` in the private directory; returns its path gnuplot-quoted.
  std::string data(const std::string& name, const std::string& bytes);
  /// Renders `body` (plot commands, after the terminal and output are set) into `png`. Returns false (and
  /// writes nothing) when gnuplot fails; throws ccc::Error naming `png` when it cannot be written.
  bool render(const std::string& png, const std::string& body, int width = 900, int height = 500,
              bool overwrite = true);

 private:
  std::string dir_;
};

/// Plot{}.render(png, body, ...) for bodies that read only files that are outputs themselves.
bool plot_png(const std::string& png, const std::string& body, int width = 900, int height = 500,
              bool overwrite = true);

/// A one-line "what: done/total, rate, ETA" on stderr, redrawn at most twice a second; silent unless
/// stderr is a terminal (and `enabled`). Ends its line when done reaches total.
class ProgressLine {
 public:
  enum class Unit { kCount, kBytes };
  /// Silent unless `enabled` and stderr is a terminal. `total` 0 = unknown: bytes then show the amount done
  /// and the rate alone; counts stay silent.
  ProgressLine(std::string what, int64_t total, bool enabled = true, Unit unit = Unit::kCount);
  /// Thread-safe. Draws at most twice a second; a run shorter than a second draws only its last line.
  void update(int64_t done);
  /// Ends a drawn line that did not reach its total (unknown totals, errors).
  void finish();

 private:
  std::string what_;
  int64_t total_;
  Unit unit_;
  bool on_;
  double t0_, last_ = -1;
  bool drawn_ = false, ended_ = false;
  std::mutex mu_;
};

/// Marks a JSON output as ours: `ccc_version` and `schema` ("ccc.<name>/1"; the number changes when a
/// field changes meaning or disappears).
void stamp(nlohmann::json& j, const std::string& name);

/// Runs argv (argv[0] a path) as a child process (standard output discarded) and waits; returns its peak
/// RSS in MiB, or −1 when it could not run or exited non-zero.
double child_peak_rss_mib(const std::vector<std::string>& args);

}  // namespace ccc::experiments
