// The scale-out (docs/scale-out.md): the ccc binary under `mpirun --oversubscribe -n N` for N = 1, 2, 4 on
// this machine's cores gives the outputs of one plain process — byte for byte where those are
// deterministic — and an error on one rank ends the job naming it, with no final output. In the plain
// build (no MPI) these skip, except the check that the plain build refuses to run under mpirun; with
// CCC_REQUIRE_MPI=1 (./setup.sh test on an MPI build) a missing mpirun fails instead of skipping.

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc {
namespace {

namespace fs = std::filesystem;

const std::string kCcc = CCC_BINARY;
const std::string kModel = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-s";

bool require_mpi() {
  const char* r = std::getenv("CCC_REQUIRE_MPI");
  return r != nullptr && std::string(r) == "1";
}

// Skips (or, with CCC_REQUIRE_MPI=1, fails) unless this build has MPI and mpirun runs.
#define CCC_REQUIRE_MPIRUN()                                                                                \
  do {                                                                                                      \
    if (!dist::built_with_mpi()) {                                                                          \
      if (require_mpi()) FAIL() << "CCC_REQUIRE_MPI=1 but this build has no MPI";                          \
      GTEST_SKIP() << "plain build (no MPI)";                                                               \
    }                                                                                                       \
    if (test::run_command("command -v mpirun > /dev/null 2>&1") != 0) {                                     \
      if (require_mpi()) FAIL() << "CCC_REQUIRE_MPI=1 but mpirun is not on PATH";                          \
      GTEST_SKIP() << "no mpirun";                                                                          \
    }                                                                                                       \
  } while (0)

// `ccc ARGS` as one process (n = 0) or under mpirun with n ranks (root may run Open MPI's ranks here: the
// tests' machine is a container). Standard error is kept in *out.
int ccc(int n, const std::string& args, std::string* out = nullptr, const std::string& env = "") {
  const std::string launch =
      n == 0 ? kCcc
             : "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun "
               "--oversubscribe -n " + std::to_string(n) + " " + kCcc;
  return test::run_command(env + " " + launch + " " + args + " 2>&1", out);
}

std::string input_text(const test::TempDir& tmp) {
  const std::string text = read_file(std::string(CCC_SOURCE_DIR) + "/README.md").substr(0, 3000);
  write_file_atomic(tmp.file("in.txt"), text);
  return tmp.file("in.txt");
}

std::string file(const std::string& path) { return read_file(path, ReadCap{uint64_t{1} << 30, "test output"}); }

TEST(MpiTest, SweepAndAttributionsExactTablesDoNotDependOnTheRankCount) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  // batched (one pass: rank 0 computes it) and --naive (one unit per head: split across every rank)
  for (const std::string path : {"", "--naive"}) {
    ASSERT_EQ(ccc(0, "sweep -m " + kModel + " " + in + " --mode mean --csv " + tmp.file("ref.csv") + " -f " + path + " --threads 1", &out), 0) << out;
    const std::string ref = file(tmp.file("ref.csv"));
    EXPECT_GT(std::count(ref.begin(), ref.end(), '\n'), 12);
    for (int n : {1, 2, 4}) {
      const std::string csv = tmp.file("n" + std::to_string(n) + ".csv");
      ASSERT_EQ(ccc(n, "sweep -m " + kModel + " " + in + " --mode mean --csv " + csv + " -f " + path + " --json", &out), 0) << out;
      EXPECT_EQ(file(csv), ref) << "sweep " << path << " on " << n << " ranks";
      const auto j = nlohmann::json::parse(out.substr(out.find('{')));
      EXPECT_EQ(j.at("ranks").get<int>(), n);
      EXPECT_EQ(j.at("components").size(), 12u);
    }
  }
  // attribute --check: the exact sweep beside the estimate (sharded), the same figures on 1 and 2 ranks
  ASSERT_EQ(ccc(0, "attribute --check --json -m " + kModel + " " + in, &out), 0) << out;
  auto a1 = nlohmann::json::parse(out.substr(out.find('{')));
  ASSERT_EQ(ccc(2, "attribute --check --json -m " + kModel + " " + in, &out), 0) << out;
  auto a2 = nlohmann::json::parse(out.substr(out.find('{')));
  for (auto* j : {&a1, &a2})
    for (const char* k : {"seconds", "exact_seconds", "command"}) j->erase(k);
  EXPECT_EQ(a1.dump(), a2.dump());
}

TEST(MpiTest, ALongSweepResumesFromItsPartialResultsAfterARankFails) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  ASSERT_EQ(ccc(0, "sweep --naive -m " + kModel + " " + in + " --csv " + tmp.file("ref.csv"), &out), 0) << out;
  // rank 1 fails after the first round of passes: the job ends naming it; no table, the partial file kept
  const std::string args = "sweep --naive -m " + kModel + " " + in + " --csv " + tmp.file("s.csv") + " --partial " +
                           tmp.file("s.partial");
  EXPECT_NE(ccc(2, args, &out, "CCC_FAULT=1:sweep.round"), 0);
  EXPECT_NE(out.find("rank 1 of 2"), std::string::npos) << out;
  EXPECT_NE(out.find("injected fault at sweep.round"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.file("s.csv")));
  ASSERT_TRUE(fs::exists(tmp.file("s.partial")));
  // the rerun (on another rank count) resumes from the 2 passes done and gives the one-process table
  ASSERT_EQ(ccc(4, args, &out), 0) << out;
  EXPECT_NE(out.find("resuming: 2 passes already done"), std::string::npos) << out;
  EXPECT_EQ(file(tmp.file("s.csv")), file(tmp.file("ref.csv")));
  EXPECT_FALSE(fs::exists(tmp.file("s.partial")));  // complete: removed
  // a partial file of another sweep is refused, naming it
  write_file_atomic(tmp.file("other.partial"), "ccc-sweep-partial 1 0123\n");
  EXPECT_NE(ccc(2, "sweep --naive -m " + kModel + " " + in + " --partial " + tmp.file("other.partial"), &out), 0);
  EXPECT_NE(out.find("partial results of another sweep"), std::string::npos) << out;
}

// Every dataset and attribute (but the command line) of two dumps, through analysis::ActivationStore.
void expect_same_dump(const std::string& a_path, const std::string& b_path) {
  analysis::ActivationStore a(a_path), b(b_path);
  ASSERT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.tokens(), b.tokens());
  EXPECT_EQ(a.streams(), b.streams());
  EXPECT_EQ(a.positions(), b.positions());
  EXPECT_EQ(a.byte_offsets(), b.byte_offsets());
  const auto ba = a.bits(), bb = b.bits();
  ASSERT_EQ(ba.size(), bb.size());
  for (size_t i = 0; i < ba.size(); ++i)
    if (!(std::isnan(ba[i]) && std::isnan(bb[i]))) {
      ASSERT_EQ(ba[i], bb[i]) << "bits row " << i;
    }
  ASSERT_EQ(a.hooks(), b.hooks());
  for (const auto& h : a.hooks()) {
    const auto x = a.block(h, 0, a.rows()), y = b.block(h, 0, b.rows());
    EXPECT_EQ((x - y).cwiseAbs().maxCoeff(), 0.0f) << h;
  }
  for (const char* k : {"fingerprint", "config", "source", "source_sha256", "policy", "dtype", "compression", "model"})
    EXPECT_EQ(a.attr(k), b.attr(k)) << k;
  for (const char* k : {"n_bytes", "streams", "window"}) EXPECT_EQ(a.attr_int(k), b.attr_int(k)) << k;
}

TEST(MpiTest, ADumpWrittenByManyRanksEqualsTheOneProcessDump) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  const std::string hooks = " --hooks 'blocks.*.hook_resid_post' --hooks blocks.1.attn.hook_pattern --hooks blocks.2.mlp.hook_post";
  ASSERT_EQ(ccc(0, "dump -m " + kModel + " " + in + " -o " + tmp.file("one.h5") + hooks + " --streams 5 --threads 1", &out), 0) << out;
  for (int n : {1, 2, 4}) {
    const std::string h5 = tmp.file("n" + std::to_string(n) + ".h5");
    ASSERT_EQ(ccc(n, "dump -m " + kModel + " " + in + " -o " + h5 + hooks + " --streams 5", &out), 0) << out;
    expect_same_dump(tmp.file("one.h5"), h5);
    if (n == 4) {  // and through h5py, dataset by dataset and attribute by attribute
      const std::string py = "/usr/bin/python3 " + std::string(CCC_SOURCE_DIR) + "/tests/cli/compare_dumps.py " +
                             tmp.file("one.h5") + " " + h5;
      if (test::run_command("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        EXPECT_EQ(test::run_command(py + " 2>&1", &out), 0) << out;
      }
    }
  }
  // compress --pure --dump: the container is the one process's, bytes for bytes, and so is the dump
  ASSERT_EQ(ccc(0, "compress --pure -m " + kModel + " " + in + " -o " + tmp.file("one.ccc") + " --dump " +
                       tmp.file("c1.h5") + hooks + " --streams 5", &out), 0) << out;
  ASSERT_EQ(ccc(2, "compress --pure -m " + kModel + " " + in + " -o " + tmp.file("two.ccc") + " --dump " +
                       tmp.file("c2.h5") + hooks + " --streams 5", &out), 0) << out;
  EXPECT_EQ(file(tmp.file("one.ccc")), file(tmp.file("two.ccc")));
  expect_same_dump(tmp.file("c1.h5"), tmp.file("c2.h5"));
  // the mixed default codes every stream through one mixer: --dump under mpirun asks for --pure
  EXPECT_NE(ccc(2, "compress -m " + kModel + " " + in + " -o " + tmp.file("m.ccc") + " --dump " + tmp.file("m.h5"), &out), 0);
  EXPECT_NE(out.find("add --pure"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.file("m.h5")));
  // parallel HDF5 writes compressed datasets only collectively: refused, naming the file
  EXPECT_NE(ccc(2, "dump -m " + kModel + " " + in + " -o " + tmp.file("z.h5") + " --compression gzip", &out), 0);
  EXPECT_NE(out.find("--compression none"), std::string::npos) << out;
}

TEST(MpiTest, AnErrorOnOneRankEndsTheJobWithNoFinalFile) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  EXPECT_NE(ccc(2, "dump -m " + kModel + " " + in + " -o " + tmp.file("d.h5") + " --hooks 'blocks.*.hook_resid_post' --streams 4",
                &out, "CCC_FAULT=1:compress.group"),
            0);
  EXPECT_NE(out.find("error: rank 1 of 2: injected fault at compress.group"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.file("d.h5")));
  for (const auto& e : fs::directory_iterator(tmp.path()))  // nor a temporary left behind
    EXPECT_EQ(e.path().filename().string().find("d.h5"), std::string::npos) << e.path();
  EXPECT_NE(ccc(2, "sae train " + tmp.file("none.h5") + " --hook x -o " + tmp.file("sae"), &out), 0);
  EXPECT_NE(out.find("none.h5"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.file("sae")));
}

TEST(MpiTest, UnitsDiscoveryAndExperimentsDoNotDependOnTheRankCount) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  ASSERT_EQ(ccc(0, "dump -m " + kModel + " " + in + " -o " + tmp.file("d.h5") + " --hooks 'blocks.*.mlp.hook_post'", &out), 0) << out;
  // units: every file of the output directory
  ASSERT_EQ(ccc(0, "units " + tmp.file("d.h5") + " -o " + tmp.file("u0"), &out), 0) << out;
  for (int n : {2, 4}) {
    const std::string dir = tmp.file("u" + std::to_string(n));
    ASSERT_EQ(ccc(n, "units " + tmp.file("d.h5") + " -o " + dir, &out), 0) << out;
    for (const char* f : {"units.csv", "summary.json", "report.md"})
      EXPECT_EQ(file(dir + "/" + f), file(tmp.file("u0") + "/" + f)) << f << " on " << n << " ranks";
  }
  // discover: the same steps and circuit (its trials are scored N at a time, then taken in order)
  ASSERT_EQ(ccc(0, "discover -m " + kModel + " " + in + " --threshold 0.02 --json", &out), 0) << out;
  auto d1 = nlohmann::json::parse(out.substr(out.find('{')));
  ASSERT_EQ(ccc(4, "discover -m " + kModel + " " + in + " --threshold 0.02 --json", &out), 0) << out;
  auto d4 = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(d1.at("steps").dump(), d4.at("steps").dump());
  EXPECT_EQ(d1.at("components").dump(), d4.at("components").dump());
  EXPECT_EQ(d1.at("circuit_total_bits").get<double>(), d4.at("circuit_total_bits").get<double>());
  EXPECT_GT(d1.at("steps").size(), 10u);
  // experiments: the measurements and tables (timings and the command line aside)
  for (const std::string e : {"competition", "copy-vs-recall"}) {
    ASSERT_EQ(ccc(0, "experiment " + e + " --quick -m " + kModel + " -o " + tmp.file(e + "1") + " " + in, &out), 0) << out;
    ASSERT_EQ(ccc(2, "experiment " + e + " --quick -m " + kModel + " -o " + tmp.file(e + "2") + " " + in, &out), 0) << out;
    auto r1 = nlohmann::json::parse(file(tmp.file(e + "1") + "/result.json"));
    auto r2 = nlohmann::json::parse(file(tmp.file(e + "2") + "/result.json"));
    EXPECT_EQ(r1.at("measurements").dump(), r2.at("measurements").dump()) << e;
    for (const auto& f : fs::directory_iterator(tmp.file(e + "1")))
      if (f.path().extension() == ".csv") {
        EXPECT_EQ(file(f.path().string()), file(tmp.file(e + "2") + "/" + f.path().filename().string())) << e << " " << f.path();
      }
  }
}

TEST(MpiTest, SaeTrainingIsDataParallelAndReproducibleForAGivenRankCount) {
  CCC_REQUIRE_MPIRUN();
  test::TempDir tmp;
  const std::string in = input_text(tmp);
  std::string out;
  ASSERT_EQ(ccc(0, "dump -m " + kModel + " " + in + " -o " + tmp.file("d.h5") + " --hooks blocks.1.mlp.hook_post", &out), 0) << out;
  const std::string args = "sae train " + tmp.file("d.h5") + " --hook blocks.1.mlp.hook_post --steps 60 --batch 256 "
                           "--buffer 2048 --expansion 2 --k 8 -q -o ";
  ASSERT_EQ(ccc(0, args + tmp.file("s0"), &out), 0) << out;
  ASSERT_EQ(ccc(1, args + tmp.file("s1"), &out), 0) << out;
  // one rank under mpirun is the one process
  EXPECT_TRUE(file(tmp.file("s0/sae.safetensors")) == file(tmp.file("s1/sae.safetensors")));
  for (const char* run : {"s2a", "s2b"}) ASSERT_EQ(ccc(2, args + tmp.file(run), &out), 0) << out;
  // the same seed and rank count: the same weights, bit for bit
  EXPECT_TRUE(file(tmp.file("s2a/sae.safetensors")) == file(tmp.file("s2b/sae.safetensors")));
  // two ranks read different rows (their halves of the dump): another dictionary of the same quality
  EXPECT_TRUE(file(tmp.file("s0/sae.safetensors")) != file(tmp.file("s2a/sae.safetensors")));
  const auto j0 = nlohmann::json::parse(file(tmp.file("s0/sae.json"))), j2 = nlohmann::json::parse(file(tmp.file("s2a/sae.json")));
  const double ev0 = j0.at("training").at("explained_variance").get<double>(),
               ev2 = j2.at("training").at("explained_variance").get<double>();
  EXPECT_GT(ev0, 0.3);
  EXPECT_NEAR(ev2, ev0, 0.05);
  EXPECT_EQ(j2.at("training").at("rows").get<int64_t>(), 60 * 256);
}

TEST(MpiTest, ThePlainBuildRefusesToRunUnderMpirun) {
  if (dist::built_with_mpi()) GTEST_SKIP() << "the MPI build runs under mpirun";
  std::string out;
  EXPECT_NE(ccc(0, "info -m " + kModel, &out, "OMPI_COMM_WORLD_SIZE=2"), 0);
  EXPECT_NE(out.find("built without MPI"), std::string::npos) << out;
  EXPECT_EQ(ccc(0, "info -m " + kModel + " > /dev/null", &out), 0) << out;
}

}  // namespace
}  // namespace ccc
