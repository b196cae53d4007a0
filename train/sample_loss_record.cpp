#include "train/sample_loss_record.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "kernels/ops.h"
#include "kernels/training_ops.h"

namespace dp::train {

SampleLossRecord::SampleLossRecord(int64_t num_samples, Device device)
    : sum_(Tensor::zeros({num_samples}, DType::Float32, device)),
      count_(Tensor::zeros({num_samples}, DType::Float32, device)) {}

void SampleLossRecord::add(const Tensor& rows, const Tensor& row_loss) {
  NoGradGuard no_grad;
  const int64_t b = rows.numel();
  if (b == 0) return;
  // The first steps of each batch shape run eagerly (train/train_step.h), so this allocation never
  // happens inside a captured step. A smaller buffer is kept, not freed: a step captured earlier
  // still reads it.
  if (!ones_.defined() || ones_.numel() < b) {
    if (ones_.defined()) outgrown_.push_back(ones_);
    ones_ = Tensor::ones({b}, DType::Float32, sum_.device());
  }
  const Tensor loss = row_loss.dtype() == DType::Float32 ? row_loss : kernels::cast(row_loss, DType::Float32);
  // Indices are unique within a batch: the unordered (atomic) scatter gives the ordered one's bits.
  kernels::scatter_rows_add_(sum_, rows, loss, /*deterministic=*/false);
  kernels::scatter_rows_add_(count_, rows, ones_.narrow0(0, b), /*deterministic=*/false);
}

void SampleLossRecord::load(const Tensor& sum, const Tensor& count) {
  DP_CHECK(sum.shape() == sum_.shape() && count.shape() == count_.shape(),
           fmt::format("the per-sample loss record has {} and {} entries, this run's training set {}", sum.numel(),
                       count.numel(), sum_.numel()),
           "resume with the dataset the run was started with");
  sum_.copy_from(sum.dtype() == DType::Float32 ? sum : sum.to(DType::Float32));
  count_.copy_from(count.dtype() == DType::Float32 ? count : count.to(DType::Float32));
}

std::vector<float> SampleLossRecord::mean() const {
  std::vector<float> s = sum_.to_float_vector();
  const std::vector<float> c = count_.to_float_vector();
  for (size_t i = 0; i < s.size(); ++i) s[i] = c[i] > 0 ? s[i] / c[i] : std::nanf("");
  return s;
}

void SampleLossState::save(StateWriter& out) const {
  if (!defined()) return;
  out.tensor(kSum, sum);
  out.tensor(kCount, count);
}

SampleLossState SampleLossState::read(StateReader& in, int64_t length, const std::string& because) {
  const bool has_sum = in.contains(kSum), has_count = in.contains(kCount);
  if (!has_sum && !has_count) return {};
  if (!has_sum || !has_count)
    in.invalid(fmt::format("dataset /{} is there without /{}", has_sum ? kSum : kCount, has_sum ? kCount : kSum));
  SampleLossState s;
  s.sum = in.require(kSum, DType::Float32, {length}, because);
  s.count = in.require(kCount, DType::Float32, {length}, because);
  return s;
}

}  // namespace dp::train
