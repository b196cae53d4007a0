#include "engine/cuda/graph.h"

#include <fmt/format.h>

#include "engine/cuda/allocator.h"
#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/error.h"

namespace dp::cuda {

namespace {
thread_local std::string t_capture;  // what the calling thread captures, "" when nothing
}  // namespace

const std::string& current_capture() { return t_capture; }

void check_not_capturing(const char* op) {
  if (t_capture.empty()) return;
  DP_THROW(fmt::format("{} inside the CUDA graph capture of {}: a graph cannot wait for the device", op,
                       t_capture),
           "move the host read out of the captured step (read device counters after the step), or set "
           "run.cuda_graphs = \"off\"");
}

Graph::Graph(int device) : device_(device), pool_(caching_allocator().create_private_pool()) {}

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
  caching_allocator().release_private_pool(pool_);
}

void Graph::capture(const std::function<void()>& work, const std::string& what) {
  DP_CHECK(!ready(), "Graph::capture: this graph already holds a capture", "create one Graph per capture");
  DP_CHECK(t_capture.empty(), fmt::format("capturing {} inside the capture of {}", what, t_capture),
           "captures cannot nest");
  DeviceGuard guard(device_);
  cudaStream_t stream = context(device_).stream();
  DP_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  t_capture = what;
  try {
    PrivatePoolScope pool(pool_);
    work();
  } catch (...) {
    t_capture.clear();
    cudaGraph_t abandoned = nullptr;
    cudaStreamEndCapture(stream, &abandoned);  // ends the (invalidated) capture
    if (abandoned) cudaGraphDestroy(abandoned);
    cudaGetLastError();
    throw;
  }
  t_capture.clear();
  cudaError_t end = cudaStreamEndCapture(stream, &graph_);
  if (end != cudaSuccess) {
    cudaGetLastError();
    DP_THROW(fmt::format("the CUDA graph capture of {} failed: {} ({})", what, cudaGetErrorName(end),
                         cudaGetErrorString(end)),
             "an op used the legacy default stream or another stream without an event, or synchronised; "
             "set run.cuda_graphs = \"off\" and report the op");
  }
  DP_CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec_, graph_, 0));
}

void Graph::replay() {
  DP_CHECK(ready(), "Graph::replay: nothing was captured", "call capture() first");
  DeviceGuard guard(device_);
  DP_CUDA_CHECK(cudaGraphLaunch(exec_, context(device_).stream()));
}

}  // namespace dp::cuda
