#pragma once
// Scale-out across MPI ranks (docs/scale-out.md). A build with MPI (CMake CCC_MPI) launched by mpirun or
// srun runs a command once per rank, SPMD: every rank parses the same command line, loads the same model
// and makes the same collective calls in the same order. The libraries split their independent units of
// work across ranks with map() (round-robin by unit index) and gather the results, so every rank ends with
// the whole result; rank 0 alone prints and publishes files (model/base/fileio.h: the other ranks' outputs
// are discarded). Without MPI, or when not launched by a launcher, rank() == 0, size() == 1 and every call
// here is local: the same code path, no communication.
//
// Results do not depend on the rank count when each unit is computed exactly as a one-process run computes
// it: the callers shard whole units (a sweep's passes, a codec's stream groups), never split one.
// No torch in this header.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::dist {

/// Starts MPI when this process was launched by mpirun / srun (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK
/// in the environment) and the build has MPI; otherwise nothing. Call once, first thing in main.
void init(int* argc, char*** argv);
/// Ends MPI (a no-op when init did not start it). Every rank must reach it.
void finalize();
bool built_with_mpi();
int rank();        ///< 0 .. size() − 1
int size();        ///< ranks in the job (1 without a launcher)
int local_size();  ///< ranks on this host (threads per rank default to cores / local_size)
inline bool root() { return rank() == 0; }

/// Ends the whole job after an error on this rank: prints "error: rank R of N: what" on the standard
/// error this process started with, then MPI_Abort (every rank is ended; mpirun exits non-zero). Without
/// MPI: prints "error: what" and exits with `code`.
[[noreturn]] void abort_job(const std::string& what, int code);

/// Every rank's bytes, by rank (collective).
std::vector<std::string> allgather(std::string_view mine);
/// Rank 0's bytes on every rank (collective).
std::string broadcast(std::string_view from_root);
/// Element-wise sums over ranks, in place (collective). Sums are formed in rank order on every rank, so
/// every rank holds the same bits.
void allreduce_sum(std::vector<double>& v);
void allreduce_sum(float* data, int64_t n);
void barrier();

/// The rank that computes unit `i` in map(): i mod size().
inline int owner(int64_t i) { return static_cast<int>(i % size()); }

/// Runs fn(i) for the units i in [0, n) this rank owns and returns every unit's result (fn's bytes) on
/// every rank, in unit order. Units go round-robin (owner()), or, given each unit's estimated `cost`,
/// costliest first to the least loaded rank (a schedule fixed by the costs and the rank count). A map
/// called while another runs (a sharded unit that itself calls a sharded function) runs all its units
/// locally, so nesting never deadlocks. `done`, when set, is called on this rank after each of its units.
std::vector<std::string> map(int64_t n, const std::function<std::string(int64_t)>& fn,
                             const std::function<void(int64_t i)>& done = {}, const std::vector<double>& cost = {});
/// True inside a map's unit (where work is no longer split).
bool in_map();

/// Bytes this rank has handed to collectives since the start, and the number of collective calls.
struct Traffic {
  int64_t bytes = 0, calls = 0;
};
Traffic traffic();

/// Fault injection for the tests: when CCC_FAULT is "RANK:WHERE" and this is rank RANK, throws
/// ccc::Error("injected fault at WHERE") at the named point.
void fault_point(std::string_view where);

/// Doubles as bytes and back (results of map's units).
std::string pack(const std::vector<double>& v);
std::vector<double> unpack_doubles(std::string_view bytes);

}  // namespace ccc::dist
