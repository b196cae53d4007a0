// Evaluation of a model on a dataset: plain logits and plain cross-entropy (data parameters
// are a training device only), top-1/top-5, per-class accuracy and the confusion matrix.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "layers/module.h"

namespace dp::train {

struct BatchTensors {
  Tensor images;   // float32 [n, c, h, w] on the device, in the requested memory format
  Tensor labels;   // int64 [n]
  Tensor indices;  // int64 [n]
};
BatchTensors to_device(const data::Batch& batch, Device device,
                       MemoryFormat format = MemoryFormat::Contiguous);

// Where the loader should put batches for `device`: page-locked memory (a cached pool) for a
// CUDA device, so the host-to-device copy runs at full DMA speed; plain heap memory otherwise.
data::HostAllocator batch_memory_for(Device device);

// Counts of correct top-1 / top-5 predictions of logits [n, C] (host copy) against labels.
struct TopK {
  int64_t top1 = 0, top5 = 0;
};
TopK count_topk(const std::vector<float>& logits, int64_t classes, const std::vector<int64_t>& labels);

struct EvalResult {
  int64_t count = 0;
  double loss = 0.0;   // mean cross-entropy
  double top1 = 0.0;   // percent
  double top5 = 0.0;   // percent
  std::vector<double> per_class_accuracy;      // percent, NaN for a class with no sample
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  std::string to_json(const std::vector<std::string>& class_names = {}) const;
};

EvalResult evaluate(nn::Module& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::TransformSpec& transform, int64_t batch_size, int64_t workers,
                    Device device, MemoryFormat format = MemoryFormat::Contiguous);

}  // namespace dp::train
