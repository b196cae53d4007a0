// The one place that composes a dp-train checkpoint (format_version 1): an HDF5 file of named
// tensors (io/checkpoint_file.h) whose parts each owner of state saves and loads itself through
// engine/state_io.h. The layout, name by name, is in docs/checkpoint.md.
//
//   part                      owner (save / read)
//   model                     layers::StateDict::save_state / layers::Module::read_state
//   optimizer momentum        train::save_momentum_state / train::read_momentum_state
//   θ_class, θ_inst           train::ThetaState::save / read
//   noise map                 this file (the run data's)
//   σ history                 train::SigmaRecord::save / load
//   per-sample loss record    train::SampleLossState::save / read
//   run progress              app::RunProgress::save / load
//   header attributes         this file: format_version, arch, num_classes, noise_protocol, config, rng,
//                             data_fingerprint (app/data_fingerprint.h; absent in older checkpoints)
//
// The trainer (app/run_checkpoint.cpp) writes and resumes through it and every tool reads through
// it, so every reader gets the same checks: each dataset's name, shape and dtype against what the
// arch and num_classes imply (the net is built and its state dict compared), momentum buffers
// against their parameter, θ and noise lengths against num_classes and the training set, and
// every dataset no part claims is reported.
//
// Adding state: give its owner save/load over StateWriter/StateReader (and a test), then one
// member in Checkpoint, one line in encode_checkpoint and decode_checkpoint, one in the trainer's
// snapshot() and restore(), one row in docs/checkpoint.md.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/run_progress.h"
#include "data/label_noise.h"
#include "io/checkpoint_file.h"
#include "layers/module.h"
#include "train/data_parameters.h"
#include "train/sgd.h"
#include "train/sample_loss_record.h"
#include "train/sigma_histogram.h"

namespace dp::app {

inline constexpr int64_t kCheckpointFormatVersion = 1;

using ThetaState = train::ThetaState;

struct Checkpoint {
  std::string path;  // the file it was read from ("" when built in memory); errors name it

  // ---- header attributes ----
  int64_t num_classes = 0;
  std::string arch, noise_protocol = "none", config, rng;
  std::string data_fingerprint;  // JSON (app/data_fingerprint.h); "" in checkpoints written before it

  // ---- the owners' parts ----
  RunProgress progress;                  // epoch, step, position in the epoch, best score, seed
  layers::StateDict model;               // parameters and buffers by name
  train::NamedTensors momentum;          // parameter name -> train::SGD momentum buffer
  ThetaState theta_class, theta_inst;    // undefined when not learnt
  std::optional<data::NoiseMap> noise;   // the training set's noise map
  train::SigmaRecord history;            // σ histograms per epoch (shared edges)
  train::SampleLossState sample_loss;    // per-sample training-loss sums; undefined in older checkpoints

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
