// The fused data-parameter cross-entropy on raw pointers, as both halves' kernels take it, and
// its one unpacking from the tensors of the contract (kernels/data_param_ce.h). Host code only,
// shared by kernels/cpu/data_param_ce.cpp and kernels/cuda/data_param_ce.cu.
#pragma once
#include <cstdint>

#include "kernels/data_param_ce.h"

namespace dp::kernels::detail {

// null: not given / not wanted.
template <class T>
struct DataParamCeArgs {
  const T* logits = nullptr;
  const int64_t* labels = nullptr;
  const int64_t* indices = nullptr;
  const T* theta_class = nullptr;
  const T* theta_inst = nullptr;
  int64_t batch = 0, num_classes = 0, num_instances = 0;
  double wd_class = 0.0, wd_inst = 0.0;
  double row_grad_scale = 1.0;
  T* dlogits = nullptr;
  T* row_ce = nullptr;
  T* sigma = nullptr;
  T* dsigma = nullptr;
  T* dtheta_class_rows = nullptr;
  T* dtheta_inst_rows = nullptr;
};

template <class T>
T* out_ptr(const Tensor& t) {
  return t.defined() ? const_cast<Tensor&>(t).data<T>() : nullptr;
}

template <class T>
const T* in_ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
DataParamCeArgs<T> data_param_ce_args(const DataParamCeTensors& t) {
  DataParamCeArgs<T> a;
  a.logits = t.logits.data<T>();
  a.labels = t.labels.data<int64_t>();
  a.indices = in_ptr<int64_t>(t.indices);
  a.theta_class = in_ptr<T>(t.theta_class);
  a.theta_inst = in_ptr<T>(t.theta_inst);
  a.batch = t.logits.size(0);
  a.num_classes = t.logits.size(1);
  a.num_instances = t.theta_inst.defined() ? t.theta_inst.numel() : 0;
  a.wd_class = t.wd_class;
  a.wd_inst = t.wd_inst;
  a.row_grad_scale = t.row_grad_scale;
  a.dlogits = out_ptr<T>(t.dlogits);
  a.row_ce = out_ptr<T>(t.row_ce);
  a.sigma = out_ptr<T>(t.sigma);
  a.dsigma = out_ptr<T>(t.dsigma);
  a.dtheta_class_rows = out_ptr<T>(t.dtheta_class_rows);
  a.dtheta_inst_rows = out_ptr<T>(t.dtheta_inst_rows);
  return a;
}

}  // namespace dp::kernels::detail
