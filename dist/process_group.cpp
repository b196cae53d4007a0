#include "dist/process_group.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "engine/error.h"

#ifdef DP_WITH_MPI
#include <mpi.h>
#endif

namespace dp::dist {

namespace {

// The world size a launcher announced in the environment (0: not started by a launcher).
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    const char* v = std::getenv(name);
    // SLURM_NTASKS alone (an sbatch shell, not an srun step) is not a launch: PMIx or PMI says so.
    if (v != nullptr && std::string(name) == "SLURM_NTASKS" && std::getenv("SLURM_STEP_ID") == nullptr) continue;
    if (v != nullptr) return std::max(1, std::atoi(v));
  }
  return std::getenv("PMIX_RANK") != nullptr ? 1 : 0;
}

#ifdef DP_WITH_MPI
void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

ProcessGroup discover() {
  ProcessGroup g;
  const int announced = launcher_world_size();
#ifdef DP_WITH_MPI
  if (announced == 0) return g;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Serialized: the watchdog thread only calls MPI_Abort, every collective comes from one thread.
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    std::atexit(finalize_mpi);
  }
  // Errors come back as codes (checked by the communicator), not as an abort inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g.world_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &g.local_rank);
  MPI_Comm_size(local, &g.local_world_size);
  MPI_Comm_free(&local);
  // Host names, so that a rank that waits in vain can say whom it waits for and where.
  constexpr int kHostBytes = 256;
  std::vector<char> names(static_cast<size_t>(kHostBytes) * static_cast<size_t>(g.world_size), '\0');
  std::vector<char> mine(kHostBytes, '\0');
  gethostname(mine.data(), kHostBytes - 1);
  MPI_Allgather(mine.data(), kHostBytes, MPI_CHAR, names.data(), kHostBytes, MPI_CHAR, MPI_COMM_WORLD);
  for (int r = 0; r < g.world_size; ++r) g.hosts.emplace_back(names.data() + static_cast<size_t>(r) * kHostBytes);
#else
  DP_CHECK(announced <= 1,
           fmt::format("this process was launched as one of {} ranks, but this build has no MPI", announced),
           "install libopenmpi-dev openmpi-bin and reconfigure with -Dmpi=enabled (scripts/setup.sh does), "
           "or run dp-train without mpirun/srun");
#endif
  return g;
}

}  // namespace

bool mpi_built() {
#ifdef DP_WITH_MPI
  return true;
#else
  return false;
#endif
}

const ProcessGroup& process_group() {
  static std::once_flag once;
  static ProcessGroup group;
  std::call_once(once, [] { group = discover(); });
  return group;
}

std::string describe_peers(const ProcessGroup& group, int rank) {
  auto host = [&](int r) { return r < static_cast<int>(group.hosts.size()) ? group.hosts[r] : std::string("?"); };
  if (group.world_size == 2) return fmt::format("rank {} on host {}", 1 - rank, host(1 - rank));
  std::vector<std::string> hosts;
  for (int r = 0; r < group.world_size; ++r)
    if (r != rank && std::find(hosts.begin(), hosts.end(), host(r)) == hosts.end()) hosts.push_back(host(r));
  const size_t shown = std::min<size_t>(hosts.size(), 8);
  return fmt::format("one of the other {} ranks (hosts {}{})", group.world_size - 1,
                     fmt::join(hosts.begin(), hosts.begin() + static_cast<std::ptrdiff_t>(shown), ", "),
                     hosts.size() > shown ? ", ..." : "");
}

void abort_job_after_error(const std::string& what, int exit_code) {
  const ProcessGroup& g = process_group();
  if (!g.distributed()) return;
  std::fprintf(stderr, "dp-train rank %d of %d: %s\ndp-train rank %d: ending the whole job (MPI_Abort)\n", g.rank,
               g.world_size, what.c_str(), g.rank);
  std::fflush(stderr);
  std::fflush(stdout);
#ifdef DP_WITH_MPI
  MPI_Abort(MPI_COMM_WORLD, exit_code);
#endif
  std::_Exit(exit_code);
}

}  // namespace dp::dist
