// For dp_train_mpi.sh: rank 0 enters an all-reduce that rank 1 never joins (it sleeps), so the
// collective watchdog must end the job after the timeout (argv[1] seconds) naming the rank.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "dist/communicator.h"
#include "dist/process_group.h"

int main(int argc, char** argv) {
  const double timeout = argc > 1 ? std::atof(argv[1]) : 2.0;
  auto comm = dp::dist::make_communicator(dp::Device::cpu(), timeout);
  if (comm->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  dp::Tensor t = dp::Tensor::zeros({4});
  comm->all_reduce(t);
  std::printf("watchdog_probe: the all-reduce returned without its peer\n");
  return 0;
}
