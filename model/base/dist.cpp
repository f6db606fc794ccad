#include "model/base/dist.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "model/base/error.h"

#ifdef CCC_WITH_MPI
#include <mpi.h>
#endif

namespace ccc::dist {

namespace {

int g_rank = 0, g_size = 1, g_local = 1;
bool g_started = false;
int g_map_depth = 0;
int g_stderr = 2;  // the standard error this process started with (rank ≠ 0 silences fd 2)
Traffic g_traffic;

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

#ifdef CCC_WITH_MPI
void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  CCC_FAIL("MPI ", what, " failed on rank ", g_rank, ": ", std::string(msg, static_cast<size_t>(len)));
}

int as_count(size_t n, const char* what) {
  CCC_CHECK(n <= static_cast<size_t>(INT_MAX), what, ": ", n, " bytes in one collective (more than 2^31 − 1)");
  return static_cast<int>(n);
}
#endif

}  // namespace

void init(int* argc, char*** argv) {
#ifdef CCC_WITH_MPI
  if (!launched_by_mpirun()) return;
  // every rank on this host (Open MPI says so before MPI starts): they talk through shared memory, and
  // UCX's probing of network devices would only add ~0.2 s to every start (measured); a user's choice stands
  const char* world = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* on_host = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (world != nullptr && on_host != nullptr && std::string(world) == on_host && std::getenv("OMPI_MCA_pml") == nullptr)
    ::setenv("OMPI_MCA_pml", "ob1", 0);
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "error: MPI_Init failed (launched by mpirun / srun, but MPI could not start)\n");
    std::exit(1);
  }
  g_started = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &g_local);
  MPI_Comm_free(&local);
  // errors come back as codes (check_mpi turns them into ccc::Error), not as MPI's own abort
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (g_rank != 0) {  // one rank speaks: the others' standard output and error go to /dev/null
    g_stderr = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::close(null);
    }
  }
#else
  (void)argc;
  (void)argv;
  if (launched_by_mpirun() && std::getenv("CCC_ALLOW_SERIAL_UNDER_MPIRUN") == nullptr) {
    std::fprintf(stderr,
                 "error: launched by mpirun / srun, but this ccc was built without MPI (every rank would run the "
                 "whole command): rebuild with Open MPI and parallel HDF5 installed (./setup.sh), or run ccc "
                 "without mpirun\n");
    std::exit(1);
  }
#endif
}

void finalize() {
#ifdef CCC_WITH_MPI
  if (g_started) {
    MPI_Finalize();
    g_started = false;
  }
#endif
}

bool built_with_mpi() {
#ifdef CCC_WITH_MPI
  return true;
#else
  return false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }
int local_size() { return g_local; }

void abort_job(const std::string& what, int code) {
  std::fflush(stdout);
  const std::string line =
      g_size > 1 ? "error: rank " + std::to_string(g_rank) + " of " + std::to_string(g_size) + ": " + what + "\n"
                 : "error: " + what + "\n";
  if (::write(g_stderr, line.data(), line.size()) < 0) {
  }
#ifdef CCC_WITH_MPI
  if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

std::vector<std::string> allgather(std::string_view mine) {
  if (g_size == 1) return {std::string(mine)};
#ifdef CCC_WITH_MPI
  const int n = as_count(mine.size(), "allgather");
  std::vector<int> counts(static_cast<size_t>(g_size)), offsets(static_cast<size_t>(g_size));
  check_mpi(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "allgather (sizes)");
  size_t total = 0;
  for (int r = 0; r < g_size; ++r) {
    offsets[r] = as_count(total, "allgather");
    total += static_cast<size_t>(counts[r]);
  }
  as_count(total, "allgather");
  std::string all(total, '\0');
  check_mpi(MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD),
            "allgather");
  g_traffic.bytes += n + static_cast<int64_t>(sizeof(int));
  g_traffic.calls += 1;
  std::vector<std::string> out;
  for (int r = 0; r < g_size; ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(counts[r])));
  return out;
#else
  return {std::string(mine)};
#endif
}

std::string broadcast(std::string_view from_root) {
  if (g_size == 1) return std::string(from_root);
#ifdef CCC_WITH_MPI
  int64_t n = static_cast<int64_t>(from_root.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD), "broadcast (size)");
  std::string out = g_rank == 0 ? std::string(from_root) : std::string(static_cast<size_t>(n), '\0');
  check_mpi(MPI_Bcast(out.data(), as_count(out.size(), "broadcast"), MPI_BYTE, 0, MPI_COMM_WORLD), "broadcast");
  if (g_rank == 0) g_traffic.bytes += n + 8;
  g_traffic.calls += 1;
  return out;
#else
  return std::string(from_root);
#endif
}

void allreduce_sum(std::vector<double>& v) {
  if (g_size == 1) return;
#ifdef CCC_WITH_MPI
  // reduce to rank 0, then broadcast: every rank holds rank 0's sum, bit for bit (an allreduce may
  // associate the sum differently on different ranks)
  std::vector<double> sum(v.size());
  const int n = as_count(v.size(), "allreduce");
  check_mpi(MPI_Reduce(v.data(), sum.data(), n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD), "reduce");
  if (g_rank == 0) v = sum;
  check_mpi(MPI_Bcast(v.data(), n, MPI_DOUBLE, 0, MPI_COMM_WORLD), "broadcast");
  g_traffic.bytes += static_cast<int64_t>(v.size() * sizeof(double)) * (g_rank == 0 ? 2 : 1);
  g_traffic.calls += 2;
#endif
}

void allreduce_sum(float* data, int64_t count) {
  if (g_size == 1 || count == 0) return;
#ifdef CCC_WITH_MPI
  std::vector<float> sum(g_rank == 0 ? static_cast<size_t>(count) : 0);
  const int n = as_count(static_cast<size_t>(count), "allreduce");
  check_mpi(MPI_Reduce(data, g_rank == 0 ? sum.data() : nullptr, n, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD), "reduce");
  if (g_rank == 0) std::memcpy(data, sum.data(), sizeof(float) * static_cast<size_t>(count));
  check_mpi(MPI_Bcast(data, n, MPI_FLOAT, 0, MPI_COMM_WORLD), "broadcast");
  g_traffic.bytes += count * static_cast<int64_t>(sizeof(float)) * (g_rank == 0 ? 2 : 1);
  g_traffic.calls += 2;
#else
  (void)data;
#endif
}

void barrier() {
#ifdef CCC_WITH_MPI
  if (g_size > 1) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
}

std::vector<int> assign(int64_t n, const std::vector<double>& cost) {
  std::vector<int> who(static_cast<size_t>(n));
  if (cost.empty()) {
    for (int64_t i = 0; i < n; ++i) who[static_cast<size_t>(i)] = owner(i);
    return who;
  }
  CCC_CHECK(static_cast<int64_t>(cost.size()) == n, "map: ", cost.size(), " costs for ", n, " units");
  // longest processing time first: the costliest unit to the least loaded rank (ties: the lower index,
  // the lower rank), so the schedule depends on the costs and the rank count only
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  std::vector<double> load(static_cast<size_t>(g_size), 0.0);
  for (int64_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    who[static_cast<size_t>(i)] = r;
    load[static_cast<size_t>(r)] += cost[static_cast<size_t>(i)];
  }
  return who;
}

std::vector<std::string> map(int64_t n, const std::function<std::string(int64_t)>& fn,
                             const std::function<void(int64_t)>& done, const std::vector<double>& cost) {
  std::vector<std::string> out(static_cast<size_t>(n));
  const bool split = g_size > 1 && g_map_depth == 0;
  const std::vector<int> who = split ? assign(n, cost) : std::vector<int>(static_cast<size_t>(n), g_rank);
  struct Depth {
    Depth() { ++g_map_depth; }
    ~Depth() { --g_map_depth; }
  };
  {
    Depth depth;
    for (int64_t i = 0; i < n; ++i) {
      if (who[static_cast<size_t>(i)] != g_rank) continue;
      out[static_cast<size_t>(i)] = fn(i);
      if (done) done(i);
    }
  }
  if (!split) return out;
  // this rank's results, each with its length, in unit order; then everyone's
  std::string mine;
  for (int64_t i = 0; i < n; ++i) {
    if (who[static_cast<size_t>(i)] != g_rank) continue;
    const uint64_t len = out[static_cast<size_t>(i)].size();
    mine.append(reinterpret_cast<const char*>(&len), sizeof len);
    mine += out[static_cast<size_t>(i)];
  }
  const auto all = allgather(mine);
  std::vector<size_t> off(static_cast<size_t>(g_size), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int r = who[static_cast<size_t>(i)];
    if (r == g_rank) continue;
    uint64_t len = 0;
    size_t& o = off[static_cast<size_t>(r)];
    CCC_CHECK(o + sizeof len <= all[r].size(), "map: rank ", r, " sent a short result");
    std::memcpy(&len, all[r].data() + o, sizeof len);
    o += sizeof len;
    CCC_CHECK(o + len <= all[r].size(), "map: rank ", r, " sent a short result");
    out[static_cast<size_t>(i)] = all[r].substr(o, len);
    o += len;
  }
  return out;
}

bool in_map() { return g_map_depth > 0; }

Traffic traffic() { return g_traffic; }

void fault_point(std::string_view where) {
  const char* f = std::getenv("CCC_FAULT");
  if (f == nullptr) return;
  const std::string spec(f);
  const auto colon = spec.find(':');
  if (colon == std::string::npos) return;
  if (spec.substr(0, colon) == std::to_string(g_rank) && spec.substr(colon + 1) == where)
    CCC_FAIL("injected fault at ", where, " (CCC_FAULT=", spec, ")");
}

std::string pack(const std::vector<double>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
}

std::vector<double> unpack_doubles(std::string_view bytes) {
  CCC_CHECK(bytes.size() % sizeof(double) == 0, "unpack: ", bytes.size(), " bytes is not a whole number of doubles");
  std::vector<double> v(bytes.size() / sizeof(double));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

}  // namespace ccc::dist
