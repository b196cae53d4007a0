// The NCCL backend of Communicator (CUDA tensors of this rank's device). In every CUDA build;
// more than one rank needs MPI too (the unique id's broadcast). Without CUDA the factory throws.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace dp::dist {

// Collective: every rank calls it. Rank 0 creates the NCCL unique id, MPI broadcasts it (a job
// of one process: a one-rank communicator, no MPI).
std::unique_ptr<Communicator> make_nccl_communicator(Device device, double timeout_s);

}  // namespace dp::dist
