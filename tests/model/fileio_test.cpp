// The one output writer (model/base/fileio.h): whole or nothing, never replacing without being asked.

#include "model/base/fileio.h"

#include <gtest/gtest.h>

#include <filesystem>

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

}  // namespace
}  // namespace ccc
