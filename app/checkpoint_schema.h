// The one place that knows a dp-train checkpoint's layout (format_version 1), an HDF5 file of
// named tensors (io/checkpoint_file.h) laid out for h5py users:
//   /model/<name>                       parameters and buffers, torchvision/reference names
//   /optimizer/momentum/<name>          train::SGD momentum buffers (absent before a parameter's first step)
//   /data_parameters/theta_class        log-space θ [num_classes] and theta_class_momentum, when learnt
//   /data_parameters/theta_inst         log-space θ [training-set size] and theta_inst_momentum, when learnt
//   /noise/{label,original_label,is_corrupted,image_source}   the training set's noise map
//   /history/sigma_edges                bins + 1 σ values shared by every histogram
//   /history/sigma_<group>_counts       [epochs, bins] σ histogram per epoch, and sigma_<group>_sums
//                                       [epochs] the exact sum of σ (optional), for the groups of
//                                       train::SigmaRecord: inst, inst_mislabelled, inst_permuted_kept,
//                                       inst_untouched (all three or none), class
//   /history/sample_loss_sum, _count    [training-set size] float32: each sample's training losses
//                                       summed over the steps that saw it, and how many (optional,
//                                       both or neither; train/sample_loss_record.h)
//   attributes: format_version, epoch (completed), global_step, seed, class_param_steps,
//               inst_param_steps, best_val_top1, best_epoch, arch, num_classes, noise_protocol, config, rng
// The trainer (app/run_checkpoint.cpp) writes and resumes through it and every tool reads
// through it, so every reader gets the same checks: each dataset's name, shape and dtype against
// what the arch and num_classes imply (the net is built and its state dict compared), momentum
// buffers against their parameter, θ and noise lengths against num_classes and the training set.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/label_noise.h"
#include "layers/module.h"
#include "train/sigma_histogram.h"
#include "io/checkpoint_file.h"

namespace dp::app {

inline constexpr int64_t kCheckpointFormatVersion = 1;

// A learnt data-parameter vector with its train::SparseSGD state.
struct ThetaState {
  Tensor theta;     // log-space θ
  Tensor momentum;  // same shape
  int64_t steps = 0;
  bool defined() const { return theta.defined(); }
};

struct Checkpoint {
  std::string path;  // the file it was read from ("" when built in memory); errors name it

  // ---- attributes ----
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // iterations completed
  int64_t seed = 0;
  int64_t num_classes = 0;
  double best_val_top1 = -1.0;
  int64_t best_epoch = 0;  // the epoch best_val_top1 was reached (0: unknown or none)
  std::string arch, noise_protocol = "none", config, rng;

  // ---- tensors ----
  layers::StateDict model;                                    // parameters and buffers by name
  std::vector<std::pair<std::string, Tensor>> momentum;   // parameter name -> train::SGD momentum buffer
  ThetaState theta_class, theta_inst;                     // undefined when not learnt
  std::optional<data::NoiseMap> noise;                    // the training set's noise map
  train::SigmaRecord history;                             // σ histograms per epoch (shared edges)
  Tensor sample_loss_sum, sample_loss_count;              // undefined in checkpoints written before them

  const Tensor* find_momentum(const std::string& parameter) const;
  // The training-set size the checkpoint implies (its noise map), or -1 when it has none.
  int64_t train_size() const { return noise ? noise->size() : -1; }
};

// Reads `path` and validates it (see the top of this file). `reference` is the net to compare
// the model and momentum datasets with; by default nets::make_net(arch, num_classes) is built.
// Every error names the file and the dataset or attribute and says what to do.
Checkpoint read_checkpoint(const std::string& path, const layers::Module* reference = nullptr);

// The same validation for a file already read (what read_checkpoint does after reading).
Checkpoint decode_checkpoint(const io::TensorFile& file, const std::string& path,
                             const layers::Module* reference = nullptr);

// The layout of `checkpoint` as named tensors and attributes, and its atomic write.
io::TensorFile encode_checkpoint(const Checkpoint& checkpoint);
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// The checkpoint's net (make_net(arch, num_classes)) with its model tensors loaded.
layers::ModulePtr make_checkpoint_model(const Checkpoint& checkpoint);

}  // namespace dp::app
