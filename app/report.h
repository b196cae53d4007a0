// The curriculum report (dp-inspect CKPT --report): one self-contained report.html that shows what
// a run learnt about its training samples, to be opened offline in any browser after copying it
// off a cluster (images embedded, no script, no server). It holds
//   - the run: its configuration in short, epochs, best and final top-1/top-5, and the train and
//     validation loss and top-1 per epoch (from the run folder's metrics.jsonl);
//   - the σ-over-epochs figures;
//   - with a known noise map: ROC-AUC, average precision, precision@k and precision–recall curves
//     of σ beside the other detectors of the same run (app/curriculum.h), naming the best;
//   - the N most distrusted training samples as a grid (thumbnail, rank, σ, given label → the final
//     model's prediction, whether the label is known to be wrong) and the N most trusted;
//   - per class: samples, flagged samples, mean σ, class σ, the classes its flagged samples are
//     most often taken for.
// What cannot be shown says why in its place: a checkpoint without instance parameters, without
// the loss record, a dataset that is gone (placeholders instead of images), built-in synthetic
// data (no images to look at).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "app/curriculum.h"
#include "data/dataset.h"

namespace dp::app {

struct Checkpoint;
class Config;

struct ReportInputs {
  const Checkpoint* checkpoint = nullptr;
  const Config* config = nullptr;                // the run's (stored in the checkpoint)
  std::string metrics_jsonl;                     // the run folder's metrics.jsonl ("" or missing: no curves)
  const data::Dataset* train = nullptr;          // the training split for thumbnails; null: placeholders
  std::string data_problem;                      // why `train` is null
  const EvalResult* pass = nullptr;              // the final model over the training split; null: none
  std::vector<std::string> class_names;          // may be empty (label numbers then)
  std::vector<std::string> sigma_figure_titles;  // shown above the figures, parallel to sigma_figures_png
  std::vector<std::vector<uint8_t>> sigma_figures_png;
};

struct ReportOptions {
  int64_t samples = 200;    // most distrusted (and most trusted) samples shown
  FlagRule flag;            // the per-class table's "flagged" (the relabel file's rule)
  int thumbnail_px = 96;    // longest side of a thumbnail
  std::string generated_by; // e.g. dp-inspect's version line
};

// The page, as HTML text.
std::string render_report(const ReportInputs& inputs, const ReportOptions& options);

// The per-epoch lines of a run folder's metrics.jsonl ({"type": "epoch", ...}), the last line of
// each epoch up to `epochs` (a resumed run appends). Empty when the file is missing.
struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_top1 = 0, val_loss = 0, val_top1 = 0, val_top5 = 0;
};
std::vector<EpochMetrics> read_epoch_metrics(const std::string& metrics_jsonl, int64_t epochs);

}  // namespace dp::app
