// The MPI backend of Communicator (CPU tensors, MPI_COMM_WORLD), and the helpers other backends
// use for their own rendezvous. Only in builds with MPI; elsewhere the factories throw.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace dp::dist {

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);

// Broadcasts nbytes of host memory from root over MPI_COMM_WORLD (NCCL's unique id).
void mpi_broadcast_bytes(void* data, size_t nbytes, int root);

}  // namespace dp::dist
