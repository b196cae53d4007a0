#include "app/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "data/dataset_slice.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/ops.h"

namespace dp::app {

namespace {

// Every rank ends with the sums over all ranks: the counts and the confusion matrix in one int64
// all-reduce (exact), the loss sum added in rank order (the same bits on every rank), and with
// per_sample each rank's share of the per-sample arrays gathered in rank order (the shares are
// contiguous and in rank order, so the gathered arrays are by dataset index).
void reduce_over_ranks(EvalResult& r, double& loss_sum, std::vector<int64_t>& topk, dist::Communicator& ranks,
                       int64_t begin, int64_t end) {
  std::vector<int64_t> counts{r.count, topk[0], topk[1]};
  for (const auto& row : r.confusion) counts.insert(counts.end(), row.begin(), row.end());
  Tensor summed = Tensor::from_vector(counts, {static_cast<int64_t>(counts.size())});
  ranks.all_reduce(summed);
  const int64_t* p = summed.data<int64_t>();
  r.count = p[0];
  topk = {p[1], p[2]};
  p += 3;
  for (auto& row : r.confusion)
    for (int64_t& v : row) v = *p++;
  loss_sum = dist::sum_in_rank_order(ranks, loss_sum);
  if (r.sample_loss.empty()) return;
  const int64_t n = static_cast<int64_t>(r.sample_loss.size());
  std::vector<int64_t> shares;
  for (int64_t k = 0; k < ranks.world_size(); ++k)
    shares.push_back(data::share_begin(n, k + 1, ranks.world_size()) - data::share_begin(n, k, ranks.world_size()));
  // This rank's share [begin, end) of a per-sample vector replaced by every rank's, in rank order.
  auto gather = [&](auto& values) {
    using T = typename std::decay_t<decltype(values)>::value_type;
    const Tensor all = ranks.all_gather(
        Tensor::from_vector(std::vector<T>(values.begin() + begin, values.begin() + end), {end - begin}), shares);
    values.assign(all.data<T>(), all.data<T>() + n);
  };
  gather(r.sample_loss);
  gather(r.sample_prediction);
  gather(r.sample_margin);
  gather(r.sample_confidence);
}

}  // namespace

EvalResult evaluate(layers::Module& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::TransformSpec& transform, int64_t batch_size, int64_t workers,
                    Device device, MemoryFormat format, bool per_sample, dist::Communicator* ranks) {
  DP_CHECK(ranks == nullptr || ranks->device().is_cpu(),
           fmt::format("evaluate: the sums are reduced on the host, but the communicator takes {} tensors",
                       ranks ? ranks->device().str() : ""),
           "pass the run's host communicator (DistributedRun::host_communicator())");
  const int64_t classes = dataset->num_classes();
  // This process's share: all of it, or rank r's contiguous range.
  const int64_t begin = ranks ? data::share_begin(dataset->size(), ranks->rank(), ranks->world_size()) : 0;
  const int64_t end =
      ranks ? data::share_begin(dataset->size(), ranks->rank() + 1, ranks->world_size()) : dataset->size();
  std::shared_ptr<const data::Dataset> share =
      ranks ? std::make_shared<data::DatasetSlice>(dataset, begin, end) : dataset;
  EvalResult r;
  r.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  data::LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.num_workers = std::max<int64_t>(1, workers);
  o.allocator = train::batch_memory_for(device);
  if (per_sample) {
    r.sample_loss.assign(static_cast<size_t>(dataset->size()), std::nanf(""));
    r.sample_prediction.assign(static_cast<size_t>(dataset->size()), -1);
    r.sample_margin.assign(static_cast<size_t>(dataset->size()), std::nanf(""));
    r.sample_confidence.assign(static_cast<size_t>(dataset->size()), std::nanf(""));
  }
  data::Loader loader(share, data::Transform(transform), o);
  loader.start_epoch(0);
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  double loss_sum = 0.0;
  Tensor correct = Tensor::zeros({2}, DType::Int64, device);  // top-1, top-5
  while (auto batch = loader.next()) {
    train::BatchTensors t = train::to_device(*batch, device, format);
    Tensor logits = model(t.images);
    if (logits.dtype() != DType::Float32) logits = kernels::to_dtype(logits, DType::Float32);
    loss_sum += kernels::cross_entropy(logits, t.labels).item() * static_cast<double>(batch->n);
    kernels::topk_correct_(correct, logits, t.labels);
    std::vector<float> host = logits.to_float_vector();
    for (int64_t i = 0; i < batch->n; ++i) {
      const float* row = host.data() + i * classes;
      int64_t pred = std::max_element(row, row + classes) - row;
      ++r.confusion[static_cast<size_t>(batch->labels[i])][static_cast<size_t>(pred)];
      if (per_sample) {  // cross-entropy = logsumexp(row) - row[label], in double
        const int64_t label = batch->labels[i];
        double sum = 0, best_other = -INFINITY;
        for (int64_t c = 0; c < classes; ++c) {
          sum += std::exp(static_cast<double>(row[c]) - row[pred]);
          if (c != label) best_other = std::max(best_other, static_cast<double>(row[c]));
        }
        const auto index = static_cast<size_t>(begin + batch->indices[i]);  // in `dataset`
        r.sample_loss[index] = static_cast<float>(row[pred] + std::log(sum) - row[label]);
        r.sample_prediction[index] = pred;
        // p[label] − p[best other], both relative to the winning logit; one class: margin 1.
        const double p_label = std::exp(static_cast<double>(row[label]) - row[pred]) / sum;
        const double p_other = classes > 1 ? std::exp(best_other - row[pred]) / sum : 0.0;
        r.sample_margin[index] = static_cast<float>((p_label - p_other + 1.0) / 2.0);
        r.sample_confidence[index] = static_cast<float>(1.0 / sum);  // p[pred]: its term in the sum is 1
      }
    }
    r.count += batch->n;
  }
  model.train(was_training);
  r.evaluated_here = r.count;
  const std::vector<double> k = correct.to_double_vector();
  std::vector<int64_t> topk{static_cast<int64_t>(k[0]), static_cast<int64_t>(k[1])};
  if (ranks) reduce_over_ranks(r, loss_sum, topk, *ranks, begin, end);
  if (r.count > 0) {
    r.loss = loss_sum / static_cast<double>(r.count);
    r.top1 = 100.0 * static_cast<double>(topk[0]) / static_cast<double>(r.count);
    r.top5 = 100.0 * static_cast<double>(topk[1]) / static_cast<double>(r.count);
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

}  // namespace dp::app
