// CUDA graphs: record the work a function enqueues on a device's context stream once, replay it
// with one launch. The model of use (train/train_step.h): run the work eagerly until it is
// warm (no first-use initialisation left), keep its inputs in fixed buffers and its changing
// scalars in device memory, capture, then replay.
//
// Memory: while a graph captures, the caching allocator serves the capturing thread from a pool
// private to the graph (engine/cuda/allocator.h), so the addresses baked into the graph are never
// handed to other work, and stay valid while the graph lives. Tensors allocated during the capture
// (activations, gradients) keep their pool memory when they outlive it.
//
// Host synchronisation cannot be recorded: an op that would wait for the device during a capture
// (a device-to-host copy such as Tensor::item(), a stream or event synchronisation, freeing cached
// memory, cuDNN's timed algorithm search) throws dp::Error naming itself and the capture, and the
// capture is abandoned.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>

namespace dp::cuda {

class Graph {
 public:
  explicit Graph(int device);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records what `work` enqueues on context(device).stream(); `what` names the capture in errors.
  // Throws dp::Error (and leaves the graph empty) when the work does something a graph cannot hold.
  void capture(const std::function<void()>& work, const std::string& what);
  void replay();  // launches the recorded work on the context stream
  bool ready() const { return exec_ != nullptr; }
  uint64_t pool() const { return pool_; }

 private:
  int device_;
  uint64_t pool_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// What the calling thread is capturing ("" when nothing).
const std::string& current_capture();
// Throws dp::Error when the calling thread is capturing a graph: `op` cannot be recorded because
// it waits for the device (or changes memory the graph may use).
void check_not_capturing(const char* op);

}  // namespace dp::cuda
