#include "model/base/util.h"

#include <sched.h>

#include <thread>

#include <openssl/evp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/fileio.h"

namespace ccc {

namespace {

// A "Key:  N kB" line of a /proc file, in bytes (0 when absent).
uint64_t proc_kib_field(const char* file, const std::string& want) {
  std::ifstream in(file);
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == want) return kib << 10;
    in.ignore(256, '\n');
  }
  return 0;
}

// A size for messages: MiB, or GiB from 10 GiB on.
std::string mib(uint64_t bytes) {
  char b[48];
  const double x = static_cast<double>(bytes);
  if (x >= 10.0 * (1 << 30)) std::snprintf(b, sizeof b, "%.1f GiB", x / (1 << 30));
  else std::snprintf(b, sizeof b, "%.1f MiB", x / (1 << 20));
  return b;
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

uint64_t memory_available() {
  uint64_t available = proc_kib_field("/proc/meminfo", "MemAvailable:");
  if (available == 0) available = uint64_t{1} << 40;  // no /proc: no estimate to refuse by
  struct rlimit as {};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const uint64_t mapped = proc_kib_field("/proc/self/status", "VmSize:");
    const uint64_t room = as.rlim_cur > mapped ? as.rlim_cur - mapped : 0;
    available = std::min<uint64_t>(available, room);
  }
  return available;
}

void check_memory(uint64_t estimate, uint64_t max_memory, const std::string& what) {
  const uint64_t limit = max_memory > 0 ? max_memory : memory_available();
  CCC_CHECK(estimate <= limit, what, " needs an estimated ", mib(estimate), " of memory but ", mib(limit), " is ",
            max_memory > 0 ? "allowed by --max-memory" : "available",
            max_memory > 0 ? "" : " (--max-memory BYTES overrides the estimate)");
}

ReadCap weights_cap() { return {memory_available(), "weights file (the memory available now)"}; }

std::string read_file(const std::string& path, ReadCap cap) {
  std::error_code ec;
  CCC_CHECK(!std::filesystem::is_directory(path, ec), path, " is a directory, expected a file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CCC_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    const auto size = static_cast<uint64_t>(st.st_size);
    CCC_CHECK(size <= cap.bytes, path, ": ", mib(size), ", more than the ", mib(cap.bytes), " a ", cap.kind,
              " may hold");
    out.reserve(static_cast<size_t>(size));
  }
  constexpr size_t kChunk = size_t{1} << 20;
  for (;;) {
    const size_t at = out.size();
    out.resize(at + kChunk);
    const ssize_t r = ::read(fd, out.data() + at, kChunk);
    if (r < 0 && errno == EINTR) {
      out.resize(at);
      continue;
    }
    out.resize(at + static_cast<size_t>(std::max<ssize_t>(r, 0)));
    CCC_CHECK(r >= 0, "error reading ", path, ": ", std::strerror(errno));
    if (r == 0) break;
    CCC_CHECK(out.size() <= cap.bytes, path, ": more than the ", mib(cap.bytes), " a ", cap.kind,
              " may hold (a device or a growing file?)");
  }
  return out;
}

bool parse_uint64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool parse_int64(std::string_view s, int64_t* out) {
  const bool neg = !s.empty() && s[0] == '-';
  uint64_t mag = 0;
  if (!parse_uint64(neg ? s.substr(1) : s, &mag)) return false;
  if (mag > (neg ? uint64_t{1} << 63 : uint64_t{INT64_MAX})) return false;
  *out = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return true;
}

namespace {

// ".NAME~ccc" with NAME shortened so that the whole temporary name fits in 255 bytes.
std::string temp_prefix(const std::filesystem::path& p) {
  std::string name = p.filename().string();
  constexpr size_t kNameMax = 255, kSuffix = 1 + 4 + 10 + 1 + 4;  // "." "~ccc" pid "-" 4 hex digits
  if (name.size() + kSuffix > kNameMax) name.resize(kNameMax - kSuffix);
  return "." + name + "~ccc";
}

}  // namespace

std::string temp_path_for(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  static const char* kHex = "0123456789abcdef";
  std::random_device rd;
  uint32_t r = rd();
  std::string suffix = std::to_string(::getpid()) + "-";
  for (int i = 0; i < 4; ++i, r >>= 4) suffix += kHex[r & 15];
  return (p.parent_path() / (temp_prefix(p) + suffix)).string();
}

int remove_stale_temps(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string prefix = temp_prefix(p);
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(p.parent_path().empty() ? fs::path(".") : p.parent_path(), ec), end;
       !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dash = n.find('-', prefix.size());
    if (dash == std::string::npos || dash == prefix.size()) continue;
    char* end_ptr = nullptr;
    const long pid = std::strtol(n.c_str() + prefix.size(), &end_ptr, 10);
    if (end_ptr != n.c_str() + dash || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    std::error_code rm;
    const auto type = it->symlink_status(rm).type();
    if (type == fs::file_type::regular && fs::remove(it->path(), rm)) ++removed;
    if (type == fs::file_type::directory && fs::remove_all(it->path(), rm) > 0) ++removed;  // an OutputDir's
  }
  return removed;
}

bool is_stream_output(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return false;
  if (S_ISREG(st.st_mode)) return false;
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return true;
  CCC_FAIL(path, S_ISDIR(st.st_mode) ? " is a directory" : " is a special file (block device or socket)",
           ", not a file ccc can write");
}

namespace {

bool write_all(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void fsync_dir_of(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: the rename itself is what makes the file appear whole
  ::close(fd);
}

}  // namespace

void publish_file(const std::string& tmp, const std::string& path, bool overwrite) {
  int rc = 0, e = 0;
  if (overwrite) {
    rc = std::rename(tmp.c_str(), path.c_str());
    e = errno;
  } else {
    // the existence check when the output was opened and this rename are not atomic: the rename must not replace
    rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE);
    e = errno;
    if (rc != 0 && (e == EINVAL || e == ENOSYS)) {  // no renameat2 flags here: link fails on an existing name
      rc = ::link(tmp.c_str(), path.c_str());
      e = errno;
      if (rc == 0) ::unlink(tmp.c_str());
    }
  }
  if (rc == 0) return;
  ::unlink(tmp.c_str());
  if (e == EEXIST) CCC_FAIL(path, " exists (refusing to overwrite; another writer created it meanwhile)");
  CCC_FAIL("cannot rename ", tmp, " to ", path, ": ", std::strerror(e));
}

// Regular outputs are built in an anonymous O_TMPFILE inode where the file system offers one (a kill -9
// during the write leaves nothing behind), linked in under a temporary name and renamed over the final
// name at commit(); elsewhere in a named temporary. Character devices and FIFOs are written directly.
OutputFile::OutputFile(const std::string& path, bool overwrite) : path_(path), overwrite_(overwrite) {
  namespace fs = std::filesystem;
  if (path == "-") {
    fd_ = 1;
    direct_ = true;
    return;
  }
  if (!dist::root()) {  // under mpirun rank 0 alone publishes (model/base/dist.h): the others' bytes are dropped
    fd_ = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    CCC_CHECK(fd_ >= 0, "cannot open /dev/null: ", std::strerror(errno));
    direct_ = true;
    return;
  }
  if (is_stream_output(path)) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    CCC_CHECK(fd_ >= 0, "cannot open ", path, " for writing: ", std::strerror(errno));
    direct_ = true;
    return;
  }
  std::error_code ec;
  CCC_CHECK(overwrite || !fs::exists(path, ec), path, " exists (refusing to overwrite)");
  const std::string dir = fs::path(path).parent_path().string();
  remove_stale_temps(path);
  tmp_ = temp_path_for(path);
#ifdef O_TMPFILE
  fd_ = ::open(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#endif
  if (fd_ < 0) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    CCC_CHECK(fd_ >= 0, "cannot create a temporary file for ", path, " (", tmp_, "): ", std::strerror(errno));
    named_ = true;
  }
}

OutputFile::~OutputFile() {
  if (committed_) return;
  if (fd_ >= 0 && fd_ != 1) ::close(fd_);
  if (named_) ::unlink(tmp_.c_str());
}

void OutputFile::write(std::string_view bytes) {
  CCC_CHECK(!committed_ && fd_ >= 0, path_, ": write after commit");
  CCC_CHECK(write_all(fd_, bytes), "error writing ", path_ == "-" ? "standard output" : path_, ": ", std::strerror(errno));
}

void OutputFile::commit() {
  CCC_CHECK(!committed_ && fd_ >= 0, path_, ": committed twice");
  if (direct_) {
    const bool ok = fd_ == 1 || ::close(fd_) == 0;
    committed_ = true;
    CCC_CHECK(ok, "error writing ", path_, ": ", std::strerror(errno));
    return;
  }
  bool ok = ::fsync(fd_) == 0;
  int e = errno;
  if (ok && !named_) {
    // Give the anonymous inode its temporary name (an existing final name must not be clobbered by linkat).
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    ok = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) == 0;
    e = errno;
    named_ = ok;
  }
  ok = (::close(fd_) == 0) && ok;
  fd_ = -1;
  if (!ok) CCC_FAIL("error writing ", path_, ": ", std::strerror(e ? e : errno));
  named_ = false;  // publish_file removes the temporary on failure
  publish_file(tmp_, path_, overwrite_);
  committed_ = true;
  fsync_dir_of(path_);
}

namespace {

constexpr int kTempSlots = 64;
constexpr size_t kTempPathMax = 4096;
char g_temp_paths[kTempSlots][kTempPathMax];
std::atomic<int> g_temp_state[kTempSlots];  // 0 free, 1 being written, 2 registered

extern "C" void remove_temps_and_die(int sig) {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_state[i].load() == 2) ::unlink(g_temp_paths[i]);  // async-signal-safe
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

int register_temp(const std::string& path) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      ::sigaction(sig, nullptr, &old);
      if (old.sa_handler == SIG_IGN) continue;  // nohup / a shell's background job: keep ignoring it
      struct sigaction sa {};
      sa.sa_handler = remove_temps_and_die;
      sigemptyset(&sa.sa_mask);
      ::sigaction(sig, &sa, nullptr);
    }
  });
  if (path.size() >= kTempPathMax) return -1;
  for (int i = 0; i < kTempSlots; ++i) {
    int expected = 0;
    if (!g_temp_state[i].compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
    g_temp_state[i].store(2);
    return i;
  }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0 && slot < kTempSlots) g_temp_state[slot].store(0);
}

OutputDir::OutputDir(const std::string& dir, bool overwrite) : dir_(dir), overwrite_(overwrite) {
  namespace fs = std::filesystem;
  CCC_CHECK(!dir.empty(), "no output directory given");
  std::error_code ec;
  if (!dist::root()) {  // under mpirun rank 0 alone publishes: a private directory, removed at commit
    tmp_ = temp_path_for(fs::path(dir).lexically_normal().string());
    CCC_CHECK(::mkdir(tmp_.c_str(), 0777) == 0, "cannot create a temporary directory for ", dir, " (", tmp_, "): ",
              std::strerror(errno));
    return;
  }
  CCC_CHECK(!fs::exists(dir, ec) || fs::is_directory(dir, ec), dir, " exists and is not a directory");
  const fs::path parent = fs::path(dir).lexically_normal().parent_path();
  CCC_CHECK(parent.empty() || fs::is_directory(parent, ec), dir, ": directory ", parent.string(), " does not exist");
  remove_stale_temps(fs::path(dir).lexically_normal().string());
  tmp_ = temp_path_for(fs::path(dir).lexically_normal().string());
  CCC_CHECK(::mkdir(tmp_.c_str(), 0777) == 0, "cannot create a temporary directory for ", dir, " (", tmp_, "): ",
            std::strerror(errno));
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

std::string OutputDir::file(const std::string& name) const { return (std::filesystem::path(tmp_) / name).string(); }

void OutputDir::commit() {
  namespace fs = std::filesystem;
  CCC_CHECK(!committed_, dir_, ": committed twice");
  std::error_code ec;
  if (!dist::root()) {
    fs::remove_all(tmp_, ec);
    committed_ = true;
    return;
  }
  if (!fs::exists(dir_, ec)) {
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_NOREPLACE) == 0) {
      committed_ = true;
      fsync_dir_of(dir_);
      return;
    }
    CCC_CHECK(errno == EEXIST || errno == ENOTEMPTY || errno == EINVAL || errno == ENOSYS, "cannot rename ", tmp_,
              " to ", dir_, ": ", std::strerror(errno));
    // another writer made the directory meanwhile (or no renameat2 flags): publish file by file below
    fs::create_directories(dir_, ec);
    CCC_CHECK(fs::is_directory(dir_, ec), dir_, ": cannot create the output directory");
  }
  // into an existing directory: every file (and subdirectory) of the temporary, each by an atomic rename
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(tmp_)) entries.push_back(e.path());
  std::sort(entries.begin(), entries.end());
  if (!overwrite_)
    for (const auto& e : entries)
      CCC_CHECK(!fs::exists(fs::path(dir_) / e.filename(), ec), (fs::path(dir_) / e.filename()).string(),
                " exists (use --force to replace it)");
  for (const auto& e : entries) {
    const fs::path target = fs::path(dir_) / e.filename();
    if (fs::is_directory(e, ec)) {
      if (overwrite_) fs::remove_all(target, ec);
      CCC_CHECK(::renameat2(AT_FDCWD, e.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0, "cannot rename ",
                e.string(), " to ", target.string(), ": ", std::strerror(errno));
    } else {
      publish_file(e.string(), target.string(), overwrite_);
    }
  }
  fs::remove_all(tmp_, ec);
  committed_ = true;
  fsync_dir_of(dir_);
}

void write_file_atomic(const std::string& path, std::string_view bytes, bool overwrite) {
  CCC_CHECK(path != "-", "write_file_atomic: '-' is not a file name");
  OutputFile out(path, overwrite);
  out.write(bytes);
  out.commit();
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
