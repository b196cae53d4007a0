// The NCCL backend of Communicator (CUDA tensors of this rank's device). Only in builds with CUDA
// and MPI; elsewhere the factory throws.
#pragma once
#include <memory>

#include "engine/dist/communicator.h"

namespace dp::dist {

// Collective: every rank calls it. Rank 0 creates the NCCL unique id, MPI broadcasts it.
std::unique_ptr<Communicator> make_nccl_communicator(Device device, double timeout_s);

}  // namespace dp::dist
