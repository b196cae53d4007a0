// One full training step on the GPU — dp-train's own step (train/train_step.h): forward,
// the fused data-parameter loss (plain cross-entropy unless --data-params asks for θ), backward,
// fused SGD with momentum and weight decay, the SparseSGD steps, device-side counters — on
// synthetic data resident on the device, timed with CUDA events around each step after warm-up.
// Prints one "RESULT ..." line per net for train_step_side_by_side.py.
//
//   bench_train_step_gpu [--net wrn-28-10 --batch 128 --size 32 --classes 100]
//                        [--warmup 3 --iters 10] [--strict-fp32] [--precision fp32|bf16]
//                        [--memory-format contiguous|channels_last] [--cudnn-heuristics]
//                        [--cuda-graphs on|off] [--data-params none|class|inst|joint]
//                        [--sync none|nccl]
//
// --sync nccl: the data-parallel step (train/data_parallel.h) on a one-rank NCCL
// communicator, i.e. what one rank of `mpirun dp-train` adds to the step (bucketed gradient
// all-reduces from the backward hook, θ all-gathers; data-parallel steps run eagerly). Against
// --sync none at --cuda-graphs off it is the data-parallel overhead at world size 1.
//
// --cuda-graphs on (the default, as dp-train's run.cuda_graphs = "auto"): the warm-up steps run
// eagerly, then the step is captured once and replayed.
// --precision bf16 runs forward and loss under dp::AutocastGuard(DType::BFloat16): bf16
// activations and tensor-core convolutions/GEMMs, float32 master weights, BN statistics, loss
// and SGD (engine/autocast.h). The default is float32 with TF32 (or strict with --strict-fp32).
// --memory-format channels_last stores the batch NHWC (converted once, like PyTorch's
// x.to(memory_format=torch.channels_last)); every activation then stays NHWC.
// cuDNN's algorithms are timed once per shape (cudnnFind, like torch.backends.cudnn.benchmark =
// True in the side-by-side script) unless --cudnn-heuristics asks for its heuristics' first choice.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/autocast.h"
#include "engine/cuda/allocator.h"
#include "engine/cuda/context.h"
#include "dist/nccl_communicator.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "nets/registry.h"
#include "train/data_parameters.h"
#include "train/data_parallel.h"
#include "train/train_step.h"
#include "train/sgd.h"

using namespace dp;

namespace {

struct Case {
  std::string net;
  int64_t batch, size, classes;
};

struct StepSetup {
  bool bf16 = false, graphs = true;
  MemoryFormat format = MemoryFormat::Contiguous;
  std::string data_params = "none";
  bool nccl = false;
};

double median_step_ms(const Case& c, int warmup, int iters, const StepSetup& setup) {
  auto net = nets::make_net(c.net, c.classes, 1);
  net->to(Device::cuda());
  net->train();
  std::vector<float> pixels(static_cast<size_t>(c.batch * 3 * c.size * c.size));
  Rng rng(3, 0);
  for (auto& v : pixels) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  std::vector<int64_t> labels(static_cast<size_t>(c.batch)), ids(static_cast<size_t>(c.batch));
  for (int64_t i = 0; i < c.batch; ++i) {
    labels[i] = i % c.classes;
    ids[i] = i;
  }
  train::BatchTensors batch;
  batch.images = kernels::convert(Tensor::from_vector(pixels, {c.batch, 3, c.size, c.size}, Device::cuda()),
                              DType::Float32, setup.format);
  batch.labels = Tensor::from_vector(labels, {c.batch}, Device::cuda());
  batch.indices = Tensor::from_vector(ids, {c.batch}, Device::cuda());
  train::SGD sgd(net->parameters(), {0.01, 0.9, 5e-4, false});
  train::DataParamConfig dc;
  dc.learn_class_parameters = setup.data_params == "class" || setup.data_params == "joint";
  dc.learn_inst_parameters = setup.data_params == "inst" || setup.data_params == "joint";
  train::DataParameters data_params(dc, c.classes, c.batch, Device::cuda());
  train::TrainStepOptions so;
  so.autocast = setup.bf16 ? DType::BFloat16 : DType::Float32;
  so.cuda_graphs = setup.graphs;
  // The capture's own replay is the last warm-up step when warmup >= 3: the optimisers' first step
  // changes their first-step flags, so the earliest capture is the third step (train_step.h).
  so.warmup_steps = std::max(warmup - 1, 1);
  std::unique_ptr<dist::Communicator> comm;
  std::unique_ptr<train::DataParallelSync> sync;
  if (setup.nccl) {
    comm = dist::make_nccl_communicator(Device::cuda(), 300.0);
    sync = std::make_unique<train::DataParallelSync>(*comm, sgd.flat());
  }
  train::TrainStep train_step(*net, sgd, data_params, so, sync.get());
  auto step = [&] { train_step.run(batch, 0.01); };
  for (int i = 0; i < warmup; ++i) step();
  cudaStream_t stream = cuda::context(0).stream();
  cuda::Event start, stop;
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    start.record(stream);
    step();
    stop.record(stream);
    stop.synchronize();
    ms.push_back(cuda::Event::elapsed_ms(start, stop));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (cuda::device_count() == 0) {
      std::printf("bench_train_step_gpu: no CUDA device, nothing to measure\n");
      return 0;
    }
    Case one{"", 0, 0, 0};
    int warmup = 3, iters = 10;
    std::string precision = "fp32", layout = "contiguous", graphs = "on", data_params = "none", sync = "none";
    bool heuristics = false;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        DP_CHECK(i + 1 < argc, "missing value after " + a, "see the usage at the top of train_step_gpu.cpp");
        return argv[++i];
      };
      if (a == "--net") one.net = value();
      else if (a == "--batch") one.batch = std::stoll(value());
      else if (a == "--size") one.size = std::stoll(value());
      else if (a == "--classes") one.classes = std::stoll(value());
      else if (a == "--warmup") warmup = std::stoi(value());
      else if (a == "--iters") iters = std::stoi(value());
      else if (a == "--strict-fp32") cuda::set_allow_tf32(false);
      else if (a == "--precision") precision = value();
      else if (a == "--memory-format") layout = value();
      else if (a == "--cudnn-heuristics") heuristics = true;
      else if (a == "--cuda-graphs") graphs = value();
      else if (a == "--data-params") data_params = value();
      else if (a == "--sync") sync = value();
      else DP_THROW("unknown argument " + a,
                    "options: --net --batch --size --classes --warmup --iters --strict-fp32 --precision "
                    "--memory-format --cudnn-heuristics --cuda-graphs --data-params --sync");
    }
    DP_CHECK(precision == "fp32" || precision == "bf16", "--precision " + precision + " is not supported",
             "use --precision fp32 (TF32 unless --strict-fp32) or --precision bf16");
    const bool bf16 = precision == "bf16";
    cuda::set_cudnn_benchmark(!heuristics);
    DP_CHECK(layout == "contiguous" || layout == "channels_last", "--memory-format " + layout + " is not supported",
             "use contiguous or channels_last");
    DP_CHECK(graphs == "on" || graphs == "off", "--cuda-graphs " + graphs + " is not supported", "use on or off");
    DP_CHECK(data_params == "none" || data_params == "class" || data_params == "inst" || data_params == "joint",
             "--data-params " + data_params + " is not supported", "use none, class, inst or joint");
    DP_CHECK(sync == "none" || sync == "nccl", "--sync " + sync + " is not supported", "use none or nccl");
    StepSetup setup;
    setup.nccl = sync == "nccl";
    setup.bf16 = bf16;
    setup.graphs = graphs == "on";
    setup.format = layout == "channels_last" ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
    setup.data_params = data_params;
    std::vector<Case> cases = {{"wrn-28-10", 128, 32, 100}, {"resnet18", 256, 224, 1000}};
    if (!one.net.empty()) cases = {one};
    for (const Case& c : cases) {
      cuda::empty_cache();
      cuda::reset_peak_memory_stats();
      double ms = median_step_ms(c, warmup, std::max(iters, 1), setup);
      std::printf("RESULT net=%s batch=%lld size=%lld precision=%s layout=%s algos=%s graphs=%s data_params=%s sync=%s step_ms=%.2f img_per_s=%.1f peak_mib=%.0f\n",
                  c.net.c_str(), static_cast<long long>(c.batch), static_cast<long long>(c.size),
                  bf16 ? "bf16" : cuda::allow_tf32() ? "tf32" : "fp32", layout.c_str(), heuristics ? "heuristics" : "timed",
                  graphs.c_str(), data_params.c_str(), sync.c_str(), ms, 1e3 * static_cast<double>(c.batch) / ms,
                  static_cast<double>(cuda::memory_stats().peak_allocated_bytes) / (1 << 20));
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
