// Who this process is in a data-parallel job, and the job-wide services that go with it.
//
// Launch: `mpirun -np N dp-train ...`, `mpirun -H a:8,b:8 ...` or `srun` under SLURM. MPI is
// initialised only when a launcher started this process (its environment says so: Open MPI's
// OMPI_COMM_WORLD_SIZE, PMIx's PMIX_RANK, PMI's PMI_SIZE), so a plain `dp-train CONFIG` starts as
// one process exactly as in a build without MPI, never touching the MPI runtime.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace dp::dist {

struct ProcessGroup {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // rank among the processes of this machine (picks the GPU)
  int local_world_size = 1;
  std::vector<std::string> hosts;  // each rank's host name (gathered at start; data-parallel jobs only)
  bool distributed() const { return world_size > 1; }
};

// The ranks other than `rank`, with their hosts, for messages about a collective they did not
// join: "rank 1 on host nodeB" in a 2-rank job (the one a waiting rank waits for), "one of the
// other 7 ranks (hosts a, b)" beyond.
std::string describe_peers(const ProcessGroup& group, int rank);

// Initialises MPI on the first call when launched by an MPI launcher (MPI_Finalize runs at exit);
// later calls return the same group. Throws when the launcher asks for several processes but this
// build has no MPI.
const ProcessGroup& process_group();

// True when this build can run data-parallel (built with MPI).
bool mpi_built();

// A communicator over every rank for tensors on `device`: MPI for the CPU, NCCL for CUDA (its
// unique id broadcast over MPI). A single process gets a trivial one (collectives are copies).
// timeout_s: a collective still waiting after that long ends the job (watchdog) naming this rank.
std::unique_ptr<Communicator> make_communicator(Device device, double timeout_s = 300.0);

// Ends the whole job after this rank failed: prints the error naming the rank on stderr, then
// MPI_Abort, so the other ranks stop at once instead of waiting in a collective. Without a
// distributed job it returns and the caller exits as usual.
void abort_job_after_error(const std::string& what, int exit_code = 1);

}  // namespace dp::dist
