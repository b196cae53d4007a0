// What a run learnt about each of its training samples, side by side for the detectors of wrong
// labels a user compares: the learnt σ, the small-loss criterion (each sample's training loss
// averaged over the run, train/sample_loss_record.h), and two views of the final model's output
// on the training split (self-confidence, i.e. p[given label], whose ranking is the final loss's;
// and cleanlab's normalised margin). Read from the checkpoint and from one pass of its model over
// the training split (app/evaluate.h with per_sample); each part is empty when its source is.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "app/evaluate.h"
#include "app/inspect/detection.h"
#include "data/label_noise.h"

namespace dp::app {

struct Checkpoint;
class Config;

struct SampleScores {
  std::vector<float> sigma;            // σ_inst = exp(θ_inst); empty: not learnt
  std::vector<float> class_sigma;      // σ_class per class; empty: not learnt
  std::vector<float> mean_train_loss;  // NaN for a sample never trained on; empty: no record
  // The final model over the training split (empty without the pass):
  std::vector<float> final_loss;       // cross-entropy against the given label
  std::vector<float> margin;           // normalised margin in [0, 1]
  std::vector<int64_t> prediction;     // top-1 class
  std::vector<float> confidence;       // the probability of the prediction
  bool has_pass() const { return !prediction.empty(); }
};

// σ and the loss record from the checkpoint; `pass` (may be null) adds the final model's view.
SampleScores sample_scores(const Checkpoint& checkpoint, const EvalResult* pass);

// One detector: a suspicion per sample, higher = more likely a wrong label.
struct Detector {
  std::string key;          // sigma, mean_train_loss, self_confidence, normalized_margin
  std::string name;         // for tables and legends
  std::string description;  // one sentence: what the score is
  std::vector<float> suspicion;
};

// The detectors `scores` has data for, in that order.
std::vector<Detector> label_error_detectors(const SampleScores& scores);
// The one with `key`; throws naming the available ones (and why a missing one is missing).
const Detector& find_detector(const std::vector<Detector>& detectors, const std::string& key);

// How well each detector finds the samples whose label is wrong (label != original_label).
struct DetectorQuality {
  std::string key, name;
  double roc_auc = 0, average_precision = 0;
  std::map<int64_t, double> precision_at;  // k -> precision@k, for the ks not above the sample count
  std::vector<inspect::PrPoint> pr_curve;
};
std::vector<DetectorQuality> detector_quality(const std::vector<Detector>& detectors,
                                              const std::vector<uint8_t>& wrong, const std::vector<int64_t>& ks);

// Which samples to flag as suspect: the top fraction by the detector's suspicion, or those above
// a suspicion threshold (σ > S for σ). Exactly one of the two is set.
struct FlagRule {
  std::string rank_by = "sigma";
  double top_fraction = -1;  // in (0, 1]
  double above = -1;         // threshold on the suspicion
  std::string why;           // how the fraction or threshold was chosen, for the report ("" if given)
  std::string describe() const;
};
std::vector<uint8_t> flag_samples(const Detector& detector, const FlagRule& rule);

// The default top fraction: the share of training samples whose given label the final model does
// not predict (how many labels the model disputes); NaN without the pass.
double disputed_fraction(const std::vector<int64_t>& labels, const SampleScores& scores);

// The σ a sample's instance parameter starts from (init_inst_param, clamped as the first step
// clamps it), NaN when the run learns none.
double initial_instance_sigma(const Config& config);

// dp-inspect's rule from its options (a value < 0: not given): --top-fraction, --sigma-above (σ
// only); else, by σ, the samples whose σ rose above `initial_sigma` (the curriculum raised their
// temperature); by another detector, the disputed fraction (10% without predictions). `why` says
// which default was taken.
FlagRule make_flag_rule(const std::string& rank_by, double top_fraction, double sigma_above, double initial_sigma,
                        const std::vector<int64_t>& labels, const SampleScores& scores);

}  // namespace dp::app
