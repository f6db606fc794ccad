// The one output writer (model/base/fileio.h): whole or nothing, never replacing without being asked.

#include "model/base/fileio.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc {
namespace {

size_t entries(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename() != "" ? 1 : 0;
  return n;
}

// Two writers racing to one new name without --force: the existence check passes for both when they
// open, and the second rename must not replace the first one's file (issue 28, item 2).
TEST(OutputFileTest, ANewNameTakenMeanwhileIsKeptWithoutOverwrite) {
  test::TempDir tmp;
  const std::string path = tmp.file("out.bin");
  {
    OutputFile mine(path, /*overwrite=*/false);
    mine.write("mine");
    write_file_atomic(path, "theirs", /*overwrite=*/false);  // the other writer finishes first
    test::expect_error([&] { mine.commit(); }, {path, "exists"});
  }
  EXPECT_EQ(read_file(path), "theirs");
  EXPECT_EQ(entries(tmp.path()), 1u);  // no temporary left behind
  // with overwrite the later writer replaces it, as asked
  OutputFile again(path, /*overwrite=*/true);
  again.write("mine");
  again.commit();
  EXPECT_EQ(read_file(path), "mine");
  EXPECT_EQ(entries(tmp.path()), 1u);
  // a symlink at the final name is replaced by the file, its target untouched
  write_file_atomic(tmp.file("victim"), "victim");
  std::filesystem::create_symlink(tmp.file("victim"), tmp.file("link"));
  write_file_atomic(tmp.file("link"), "new", /*overwrite=*/true);
  EXPECT_EQ(read_file(tmp.file("victim")), "victim");
  EXPECT_FALSE(std::filesystem::is_symlink(tmp.file("link")));
  EXPECT_EQ(read_file(tmp.file("link")), "new");
}

// The bounded reader: a regular file over its cap is refused from its size before anything is read (a 3 GB
// sparse file costs nothing), a device with no end (/dev/zero) once it passes the cap, a FIFO the same.
TEST(ReadFileTest, EveryWholeFileReadHasACapCheckedBeforeAllocation) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("small.txt"), "hello");
  EXPECT_EQ(read_file(tmp.file("small.txt"), {5, "test file"}), "hello");
  test::expect_error([&] { read_file(tmp.file("small.txt"), {4, "test file"}); },
                     {tmp.file("small.txt"), "more than the", "a test file may hold"});
  {  // sparse: 3 GiB declared, no block written
    std::FILE* f = std::fopen(tmp.file("sparse.bin").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(::ftruncate(::fileno(f), int64_t{3} << 30), 0);
    std::fclose(f);
  }
  test::expect_error([&] { read_file(tmp.file("sparse.bin")); }, {tmp.file("sparse.bin"), "3072.0 MiB", "text input"});
  test::expect_error([&] { read_file(tmp.file("sparse.bin"), kJsonCap); }, {"JSON file"});
  test::expect_error([&] { read_file("/dev/zero", {uint64_t{4} << 20, "test file"}); },
                     {"/dev/zero", "more than the 4.0 MiB a test file may hold"});
  test::expect_error([&] { read_file(tmp.path()); }, {"is a directory"});
}

// One strict integer grammar for options and files: decimal, optional '-', 64 bits, nothing else.
TEST(ParseIntTest, OnlyPlainDecimalIntegersInRange) {
  int64_t v = 0;
  uint64_t u = 0;
  for (const auto& [s, want] : std::vector<std::pair<std::string, int64_t>>{
           {"0", 0}, {"-7", -7}, {"010", 10}, {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN}}) {
    EXPECT_TRUE(parse_int64(s, &v)) << s;
    EXPECT_EQ(v, want) << s;
  }
  for (const std::string s : {"", "-", "+1", " 1", "1 ", "1.5", "0x10", "1e3", "5abc", "9223372036854775808",
                              "-9223372036854775809", "99999999999999999999"})
    EXPECT_FALSE(parse_int64(s, &v)) << s;
  EXPECT_TRUE(parse_uint64("18446744073709551615", &u));
  EXPECT_EQ(u, UINT64_MAX);
  for (const std::string s : {"-1", "18446744073709551616", "0x1", "-0"}) EXPECT_FALSE(parse_uint64(s, &u)) << s;
}

// A multi-file output appears whole or not at all: nothing before commit (and nothing after an error), a new
// directory at once, files into an existing directory without replacing one unless asked; a temporary
// directory left by a killed writer is removed by the next one.
TEST(OutputDirTest, WholeOrNothingAndNoReplaceWithoutForce) {
  test::TempDir tmp;
  const std::string dir = tmp.file("report");
  {
    OutputDir od(dir, false);
    write_file_atomic(od.file("a.txt"), "a");
    EXPECT_FALSE(std::filesystem::exists(dir));
  }  // an error before commit
  EXPECT_EQ(entries(tmp.path()), 0u);
  {
    OutputDir od(dir, false);
    write_file_atomic(od.file("a.txt"), "a");
    std::filesystem::create_directory(od.file("sub"));
    write_file_atomic(od.file("sub/b.txt"), "b");
    od.commit();
  }
  EXPECT_EQ(read_file(dir + "/a.txt"), "a");
  EXPECT_EQ(read_file(dir + "/sub/b.txt"), "b");
  EXPECT_EQ(entries(tmp.path()), 1u);
  {
    OutputDir od(dir, false);
    write_file_atomic(od.file("a.txt"), "second");
    test::expect_error([&] { od.commit(); }, {dir + "/a.txt exists"});
  }
  EXPECT_EQ(read_file(dir + "/a.txt"), "a");
  write_file_atomic(dir + "/keep.txt", "other");
  {
    OutputDir od(dir, true);
    write_file_atomic(od.file("a.txt"), "second");
    od.commit();
  }
  EXPECT_EQ(read_file(dir + "/a.txt"), "second");
  EXPECT_EQ(read_file(dir + "/keep.txt"), "other");
  EXPECT_EQ(entries(tmp.path()), 1u);
  // a temporary directory of a writer that is gone (pid 2^22 + 1 is above any pid_max default)
  const std::string stale = tmp.file(".report~ccc4194305-abcd");
  std::filesystem::create_directory(stale);
  write_file_atomic(stale + "/x", "x");
  { OutputDir od(dir, true); }
  EXPECT_FALSE(std::filesystem::exists(stale));
}

// A registered temporary is removed when SIGINT / SIGTERM / SIGHUP ends the process, which still dies by
// that signal (its parent sees the usual status).
TEST(RegisterTempTest, TemporariesGoWithTheSignalThatEndsTheProcess) {
  test::TempDir tmp;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    const std::string path = tmp.file("tmp" + std::to_string(sig));
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::signal(sig, SIG_DFL);
      write_file_atomic(path, "partial");
      register_temp(path);
      ::raise(sig);
      ::_exit(0);  // not reached
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << sig << " status " << status;
    EXPECT_FALSE(std::filesystem::exists(path)) << sig;
  }
}

}  // namespace
}  // namespace ccc
