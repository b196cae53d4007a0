// Checked wrappers for the data-parameter SparseSGD, the clamp and the row scatter
// (kernels/sparse_sgd.h).
#include "kernels/dispatch.h"
#include "kernels/training_ops.h"

namespace dp::kernels {

namespace {

void check_rows(const char* op, const Tensor& target, const Tensor& rows, const Tensor& grads) {
  DP_CHECK(target.defined() && target.dtype() == DType::Float32 && rows.defined() && grads.defined() &&
               rows.dim() == 1 && rows.dtype() == DType::Int64 && grads.dim() == 1 &&
               grads.dtype() == DType::Float32 && rows.numel() == grads.numel() &&
               rows.device() == target.device() && grads.device() == target.device(),
           fmt::format("{}: rows {} and grads {} do not match the float32 parameter {}", op,
                       rows.defined() ? rows.str() : "undefined", grads.defined() ? grads.str() : "undefined",
                       target.defined() ? target.str() : "undefined"),
           "pass int64 [n] rows and float32 [n] per-row gradients on the parameter's device");
}

}  // namespace

void sparse_sgd_step_(Tensor& theta, Tensor& momentum_buf, const Tensor& rows, const Tensor& grads,
                      const Tensor& lr, const SparseSgdHyper& h, bool first_step,
                      std::vector<int64_t>* updated_rows) {
  check_rows("sparse_sgd_step_", theta, rows, grads);
  DP_CHECK(theta.dim() == 1 && momentum_buf.defined() && momentum_buf.dtype() == DType::Float32 &&
               momentum_buf.numel() == theta.numel() && momentum_buf.device() == theta.device(),
           fmt::format("sparse_sgd_step_: θ {} and momentum buffer {} must be float32 vectors of one size",
                       theta.str(), momentum_buf.defined() ? momentum_buf.str() : "undefined"),
           "data parameters are stored as float32 [num_classes] or [num_instances]");
  DP_CHECK(lr.defined() && lr.numel() == 1 && lr.dtype() == DType::Float32 && lr.device() == theta.device(),
           "sparse_sgd_step_: lr must be a float32 scalar on " + theta.device().str() + ", got " +
               (lr.defined() ? lr.str() : std::string("undefined")),
           "keep the learning rate in a device scalar (SparseSGD::lr_tensor())");
  DP_DISPATCH(theta.device(), sparse_sgd_step, theta, momentum_buf, rows, grads, lr, h, first_step, updated_rows);
  theta.bump_version();
  momentum_buf.bump_version();
}

void clamp_all_(Tensor& theta, float lo, float hi) {
  DP_CHECK(theta.defined() && theta.dtype() == DType::Float32,
           "clamp_all_: expected a float32 tensor, got " + (theta.defined() ? theta.str() : std::string("undefined")),
           "data parameters are float32");
  DP_DISPATCH(theta.device(), clamp_all, theta, lo, hi);
  theta.bump_version();
}

void scatter_rows_add_(Tensor& dense, const Tensor& rows, const Tensor& grads, bool deterministic) {
  check_rows("scatter_rows_add_", dense, rows, grads);
  DP_DISPATCH(dense.device(), scatter_rows_add, dense, rows, grads, deterministic);
  dense.bump_version();
}

}  // namespace dp::kernels
