#include "train/run/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "kernels/ops.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/pinned_pool.h"
#endif

namespace dp::train {

data::HostAllocator batch_memory_for(Device device) {
#ifdef DP_WITH_CUDA
  if (device.is_cuda())
    return {[](size_t count) { return static_cast<float*>(cuda::pinned_allocate(count * sizeof(float))); },
            [](float* p, size_t count) { cuda::pinned_release(p, count * sizeof(float)); }};
#else
  (void)device;
#endif
  return {};
}

BatchTensors to_device(const data::Batch& batch, Device device, MemoryFormat format) {
  BatchTensors t;
  // One copy from the loader's buffer straight into the tensor on its device, then (channels-
  // last runs) one transpose there; every op downstream keeps that format.
  t.images = Tensor::empty({batch.n, batch.c, batch.h, batch.w}, DType::Float32, device);
  copy_bytes(t.images.raw_data(), device, batch.data(), Device::cpu(), t.images.nbytes());
  t.images = ops::convert(t.images, DType::Float32, format);
  t.labels = Tensor::from_vector(batch.labels, {batch.n}).to(device);
  t.indices = Tensor::from_vector(batch.indices, {batch.n}).to(device);
  return t;
}

TopK count_topk(const std::vector<float>& logits, int64_t classes, const std::vector<int64_t>& labels) {
  TopK k;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data() + i * static_cast<size_t>(classes);
    float target = row[labels[i]];
    // The label is in the top k when fewer than k classes score strictly higher than it
    // (a tie counts in the label's favour; with float logits ties are rare).
    int64_t higher = 0;
    for (int64_t c = 0; c < classes; ++c) higher += row[c] > target ? 1 : 0;
    k.top1 += higher < 1 ? 1 : 0;
    k.top5 += higher < 5 ? 1 : 0;
  }
  return k;
}

EvalResult evaluate(nn::Module& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::TransformSpec& transform, int64_t batch_size, int64_t workers,
                    Device device, MemoryFormat format) {
  const int64_t classes = dataset->num_classes();
  EvalResult r;
  r.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.num_workers = std::max<int64_t>(1, workers);
  o.allocator = batch_memory_for(device);
  data::Loader loader(dataset, data::Transform(transform), o);
  loader.start_epoch(0);
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  double loss_sum = 0.0;
  TopK correct;
  while (auto batch = loader.next()) {
    BatchTensors t = to_device(*batch, device, format);
    Tensor logits = model(t.images);
    if (logits.dtype() != DType::Float32) logits = ops::to_dtype(logits, DType::Float32);
    loss_sum += ops::cross_entropy(logits, t.labels).item() * static_cast<double>(batch->n);
    std::vector<float> host = logits.to_float_vector();
    TopK k = count_topk(host, classes, batch->labels);
    correct.top1 += k.top1;
    correct.top5 += k.top5;
    for (int64_t i = 0; i < batch->n; ++i) {
      const float* row = host.data() + i * classes;
      int64_t pred = std::max_element(row, row + classes) - row;
      ++r.confusion[static_cast<size_t>(batch->labels[i])][static_cast<size_t>(pred)];
    }
    r.count += batch->n;
  }
  model.train(was_training);
  if (r.count > 0) {
    r.loss = loss_sum / static_cast<double>(r.count);
    r.top1 = 100.0 * static_cast<double>(correct.top1) / static_cast<double>(r.count);
    r.top5 = 100.0 * static_cast<double>(correct.top5) / static_cast<double>(r.count);
  }
  for (int64_t c = 0; c < classes; ++c) {
    int64_t total = 0;
    for (int64_t p : r.confusion[static_cast<size_t>(c)]) total += p;
    r.per_class_accuracy.push_back(total ? 100.0 * static_cast<double>(r.confusion[c][c]) / total
                                         : std::nan(""));
  }
  return r;
}

std::string EvalResult::to_json(const std::vector<std::string>& class_names) const {
  nlohmann::ordered_json j;
  j["count"] = count;
  j["loss"] = loss;
  j["top1"] = top1;
  j["top5"] = top5;
  nlohmann::ordered_json per_class = nlohmann::ordered_json::array();
  for (size_t c = 0; c < per_class_accuracy.size(); ++c) {
    nlohmann::ordered_json e;
    e["class"] = c < class_names.size() ? nlohmann::ordered_json(class_names[c]) : nlohmann::ordered_json(c);
    e["accuracy"] = std::isnan(per_class_accuracy[c]) ? nlohmann::ordered_json(nullptr)
                                                      : nlohmann::ordered_json(per_class_accuracy[c]);
    per_class.push_back(e);
  }
  j["per_class"] = per_class;
  j["confusion"] = confusion;
  return j.dump(2);
}

}  // namespace dp::train
