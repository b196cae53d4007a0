// Evaluation of a model on a dataset: plain logits and plain cross-entropy (data parameters
// are a training device only), top-1/top-5, per-class accuracy and the confusion matrix.
//
// In a data-parallel run every rank calls evaluate() with the job's host communicator: rank r
// runs its contiguous share of the dataset through the model (data/dataset_slice.h: every sample
// once, a last uneven part included) and the sums are reduced, so every rank returns the same
// result, the single process's up to the summation order of the loss (counts, top-k and the
// confusion matrix exactly).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "dist/communicator.h"
#include "layers/module.h"
#include "train/batch_upload.h"

namespace dp::app {

struct EvalResult {
  int64_t count = 0;
  int64_t evaluated_here = 0;  // samples this process ran through the model: its share, or count
  double loss = 0.0;   // mean cross-entropy
  double top1 = 0.0;   // percent
  double top5 = 0.0;   // percent
  std::vector<double> per_class_accuracy;      // percent, NaN for a class with no sample
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  // With per_sample: by dataset index, each sample's cross-entropy and top-1 prediction, and the
  // normalised margin (p[label] − max over the other classes p + 1) / 2 in [0, 1] (cleanlab's
  // normalized_margin; low: the model prefers another class). exp(−loss) is p[label], the
  // self-confidence; sample_confidence is the probability of the prediction.
  std::vector<float> sample_loss;
  std::vector<int64_t> sample_prediction;
  std::vector<float> sample_margin;
  std::vector<float> sample_confidence;
  std::string to_json(const std::vector<std::string>& class_names = {}) const;
};

EvalResult evaluate(layers::Module& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::TransformSpec& transform, int64_t batch_size, int64_t workers,
                    Device device, MemoryFormat format = MemoryFormat::Contiguous, bool per_sample = false,
                    dist::Communicator* ranks = nullptr);  // CPU tensors (MPI); null: one process

}  // namespace dp::app
