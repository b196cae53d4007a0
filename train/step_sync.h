// What a data-parallel run adds to one training step (train/train_step.h). A single-process
// step uses none; the data-parallel implementation (train/data_parallel.*) all-reduces the
// model's gradients and exchanges the data parameters' per-row gradients.
//
// Every call is made from the step in a fixed order, on every rank:
//   row_gradient_scale(rows)               once, before the loss
//   before_backward()                      once, after the loss, before loss.backward()
//   grad_ready(param)                      from the autograd hook, as each gradient becomes final
//   finish_gradients()                     after backward, before the model optimiser step
//   exchange_rows(rows, grads) per θ kind  before the class step, then before the instance step
//   exchange_rows(rows, losses)            with a per-sample loss record: the batch's row losses
// Nothing may wait on the host inside these calls on CUDA (the step may be captured in a graph
// with no sync attached; a sync implementation that cannot be captured says so in
// capturable()).
#pragma once
#include "engine/host_state.h"
#include "engine/tensor.h"

namespace dp::train {

class StepSync : public HasHostState {
 public:

  // The factor for the data parameters' per-row cross-entropy gradients of this rank's batch of
  // `local_rows` (DataParamCeTensors::row_grad_scale): its share of the global batch.
  virtual double row_gradient_scale(int64_t local_rows) {
    (void)local_rows;
    return 1.0;
  }
  virtual void before_backward() {}
  virtual void grad_ready(const Tensor& param) { (void)param; }
  // On return every model gradient holds the average over ranks (ordered on the device stream).
  virtual void finish_gradients() {}
  // rows int64 [b] and grads float32 [b] of the local batch (scaled by row_gradient_scale) become
  // those of the global batch, in global batch order; identical on every rank, so θ stays
  // bitwise equal everywhere.
  virtual void exchange_rows(Tensor& rows, Tensor& grads) {
    (void)rows;
    (void)grads;
  }
  // Whether the calls above can be recorded into a CUDA graph.
  virtual bool capturable() const { return false; }
  // A capturable implementation declares the host state its calls change (engine/host_state.h).
  void declare_host_state(HostState&) override {}
};

}  // namespace dp::train
