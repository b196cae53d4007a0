#include "train/run/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "kernels/ops.h"

namespace dp::train {

EvalResult evaluate(nn::Module& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::TransformSpec& transform, int64_t batch_size, int64_t workers,
                    Device device, MemoryFormat format, bool per_sample) {
  const int64_t classes = dataset->num_classes();
  EvalResult r;
  r.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.num_workers = std::max<int64_t>(1, workers);
  o.allocator = batch_memory_for(device);
  if (per_sample) {
    r.sample_loss.assign(static_cast<size_t>(dataset->size()), std::nanf(""));
    r.sample_prediction.assign(static_cast<size_t>(dataset->size()), -1);
  }
  data::Loader loader(dataset, data::Transform(transform), o);
  loader.start_epoch(0);
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  double loss_sum = 0.0;
  Tensor correct = Tensor::zeros({2}, DType::Int64, device);  // top-1, top-5
  while (auto batch = loader.next()) {
    BatchTensors t = to_device(*batch, device, format);
    Tensor logits = model(t.images);
    if (logits.dtype() != DType::Float32) logits = ops::to_dtype(logits, DType::Float32);
    loss_sum += ops::cross_entropy(logits, t.labels).item() * static_cast<double>(batch->n);
    ops::topk_correct_(correct, logits, t.labels);
    std::vector<float> host = logits.to_float_vector();
    for (int64_t i = 0; i < batch->n; ++i) {
      const float* row = host.data() + i * classes;
      int64_t pred = std::max_element(row, row + classes) - row;
      ++r.confusion[static_cast<size_t>(batch->labels[i])][static_cast<size_t>(pred)];
      if (per_sample) {  // cross-entropy = logsumexp(row) - row[label], in double
        double sum = 0;
        for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c]) - row[pred]);
        const auto index = static_cast<size_t>(batch->indices[i]);
        r.sample_loss[index] = static_cast<float>(row[pred] + std::log(sum) - row[batch->labels[i]]);
        r.sample_prediction[index] = pred;
      }
    }
    r.count += batch->n;
  }
  model.train(was_training);
  if (r.count > 0) {
    r.loss = loss_sum / static_cast<double>(r.count);
    const std::vector<double> k = correct.to_double_vector();
    r.top1 = 100.0 * k[0] / static_cast<double>(r.count);
    r.top5 = 100.0 * k[1] / static_cast<double>(r.count);
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
