#include "experiments/support/common.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <thread>

#include "model/base/error.h"
#include "model/base/util.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

std::string default_model_path() {
  if (const char* env = std::getenv("CCC_MODEL"); env != nullptr && *env) return env;
  return (std::filesystem::path(CCC_SOURCE_DIR) / "data" / "models" / "default").string();
}

InputStream::InputStream(const std::string& path) : name_(path == "-" ? "standard input" : path) {
  if (path == "-") {
    fd_ = 0;
    return;
  }
  std::error_code ec;
  CCC_CHECK(!std::filesystem::is_directory(path, ec), path, " is a directory, expected a file");
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CCC_CHECK(fd_ >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) size_ = static_cast<uint64_t>(st.st_size);
}

InputStream::~InputStream() {
  if (fd_ > 0) ::close(fd_);
}

size_t InputStream::read(size_t n, std::string* out) {
  const size_t start = out->size();
  out->resize(start + n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd_, out->data() + start + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      out->resize(start + got);
      CCC_FAIL("error reading ", name_, ": ", std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out->resize(start + got);
  return got;
}

std::string read_input(const std::string& path) {
  // Commands that score their input whole read at most kMaxWholeInput bytes: /dev/zero or a huge sparse
  // file is a clear error, not an allocation failure (compress / decompress stream and have no limit).
  InputStream in(path);
  std::string out;
  while (in.read(size_t{1} << 20, &out) > 0)
    CCC_CHECK(out.size() <= kMaxWholeInput, in.name(), ": more than ", kMaxWholeInput >> 20,
              " MiB; this command reads its input whole (ccc compress streams any length; score a part of the file)");
  return out;
}

int run_capture(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[65536];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  return ::pclose(p);
}

const std::vector<std::pair<std::string, std::string>>& classic_compressors() {
  static const std::vector<std::pair<std::string, std::string>> k = {
      {"gzip -9", "gzip -9 -c"}, {"bzip2 -9", "bzip2 -9 -c"}, {"xz -9e", "xz -9e -c"},
      {"zstd -19", "zstd -19 -q -c"}, {"brotli -q 11", "brotli -q 11 -c"}, {"zpaq -m5", ""}};
  return k;
}

int64_t classic_compressed_size(const std::string& label, const std::string& bytes, const std::string& tmp) {
  const auto& all = classic_compressors();
  const auto it = std::find_if(all.begin(), all.end(), [&](const auto& c) { return c.first == label; });
  CCC_CHECK(it != all.end(), "unknown classic compressor ", label);
  write_file_atomic(tmp, bytes);
  std::string out;
  if (label == "zpaq -m5") {
    std::error_code ec;
    std::filesystem::remove(tmp + ".zpaq", ec);
    const int rc = run_capture("zpaq a " + sh_quote(tmp + ".zpaq") + " " + sh_quote(tmp) + " -m5 >/dev/null 2>&1", &out);
    const int64_t size = rc == 0 ? static_cast<int64_t>(std::filesystem::file_size(tmp + ".zpaq", ec)) : -1;
    std::filesystem::remove(tmp + ".zpaq", ec);
    return ec ? -1 : size;
  }
  const int rc = run_capture(it->second + " < " + sh_quote(tmp) + " 2>/dev/null", &out);
  return rc == 0 ? static_cast<int64_t>(out.size()) : -1;
}

std::string corpora_dir_or_default(const std::string& dir) {
  return dir.empty() ? model::default_corpus_dir(CCC_SOURCE_DIR) : dir;
}

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      n = 1, cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2, cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string machine_description() {
  std::string cpu = "unknown cpu";
  try {
    const std::string info = read_file("/proc/cpuinfo");
    const size_t k = info.find("model name");
    if (k != std::string::npos) {
      const size_t colon = info.find(':', k), nl = info.find('\n', k);
      if (colon != std::string::npos && colon < nl) cpu = info.substr(colon + 2, nl - colon - 2);
    }
  } catch (const Error&) {
  }
  struct utsname u {};
  ::uname(&u);
  return std::string(u.machine) + ", " + cpu + ", " + std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
         " cores";
}

Plot::Plot() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") + "/ccc-plot-XXXXXX";
  CCC_CHECK(::mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary directory for a plot (", tmpl, "): ",
            std::strerror(errno));
  dir_ = tmpl;
}

Plot::~Plot() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string Plot::data(const std::string& name, const std::string& bytes) {
  CCC_CHECK(name.find('/') == std::string::npos && !name.empty() && name[0] != '.', "plot data name '", name, "'");
  const std::string path = dir_ + "/" + name;
  write_file_atomic(path, bytes, /*overwrite=*/false);
  return gp_quote(path);
}

bool Plot::render(const std::string& png, const std::string& body, int width, int height, bool overwrite) {
  // the private directory's own files: one script and one PNG per render, replaced by the next render
  const std::string out = dir_ + "/out.png", script = dir_ + "/plot.gp";
  std::error_code ec;
  std::filesystem::remove(out, ec);
  write_file_atomic(script, "set terminal png size " + std::to_string(width) + "," + std::to_string(height) +
                                "\nset output " + gp_quote(out) + "\n" + body + "\n");
  const int rc = std::system(("gnuplot " + sh_quote(script) + " 2>/dev/null").c_str());
  if (rc != 0 || !std::filesystem::is_regular_file(out, ec)) return false;
  write_file_atomic(png, read_file(out), overwrite);
  return true;
}

bool plot_png(const std::string& png, const std::string& body, int width, int height, bool overwrite) {
  return Plot().render(png, body, width, height, overwrite);
}

// Runs argv as a child process; returns its peak RSS in MiB (−1 on failure).
double child_peak_rss_mib(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);  // its results are not ours to print
    if (null >= 0) ::dup2(null, 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (pid < 0 || ::wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

ProgressLine::ProgressLine(std::string what, int64_t total, bool enabled, Unit unit)
    : what_(std::move(what)),
      total_(total),
      unit_(unit),
      on_(enabled && (total > 0 || unit == Unit::kBytes) && ::isatty(2)),
      t0_(now_s()) {}

void ProgressLine::update(int64_t done) {
  if (!on_) return;
  std::lock_guard<std::mutex> lock(mu_);
  const double t = now_s() - t0_;
  const bool last = total_ > 0 && done >= total_;
  if (ended_ || (!last && (t - last_ < 0.5 || (t < 1.0 && !drawn_)))) return;
  last_ = t;
  drawn_ = true;
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 0;
  const double eta = done > 0 && total_ > 0 ? t * static_cast<double>(total_ - done) / static_cast<double>(done) : 0;
  if (unit_ == Unit::kCount) {
    std::fprintf(stderr, "\r%s: %lld/%lld (%.0f%%), %.1f s elapsed, ETA %.0f s   ", what_.c_str(), (long long)done,
                 (long long)total_, 100.0 * frac, t, eta);
  } else if (total_ > 0) {
    std::fprintf(stderr, "\r%s: %.1f/%.1f MB (%.0f%%), %.1f KB/s, ETA %.0f s   ", what_.c_str(), done / 1e6,
                 total_ / 1e6, 100.0 * frac, done / 1e3 / std::max(1e-9, t), eta);
  } else {
    std::fprintf(stderr, "\r%s: %.1f MB, %.1f KB/s   ", what_.c_str(), done / 1e6, done / 1e3 / std::max(1e-9, t));
  }
  if (last) {
    std::fprintf(stderr, "\n");
    ended_ = true;
  }
}

void ProgressLine::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (on_ && drawn_ && !ended_) std::fprintf(stderr, "\n");
  ended_ = true;
}

void stamp(nlohmann::json& j, const std::string& name) {
  j["ccc_version"] = CCC_VERSION;
  j["schema"] = "ccc." + name + "/1";
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::pair<std::string, std::string>> held_out_sources(const std::string& corpora_dir) {
  const std::string dir = corpora_dir_or_default(corpora_dir);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& name : model::present_corpora(dir))
    out.emplace_back(name, model::load_corpus(dir, name).split(model::Split::kHeldOut));
  CCC_CHECK(!out.empty(), "no corpus found in ", dir, " (run ./setup.sh to fetch the corpora, or pass --corpora DIR)");
  return out;
}

}  // namespace ccc::experiments
