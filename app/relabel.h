// Labels to fix: dp-inspect --relabel writes one row per training sample with what to do about it,
// in the form dp-train reads back (data.relabel_file; data/label_noise.h, apply_relabel_file), so
// that retraining on the cleaned labels is one command:
//   index,path,label,label_name,suggested_label,suggested_name,action,<detector>,rank
// label: the label the run trained the sample with; suggested_label: the final model's prediction;
// action: keep, relabel (train with suggested_label) or drop (leave the sample out); <detector>:
// the suspicion the flags came from (e.g. sigma), rank: its rank (1 = most suspect). Edit the
// action or suggested_label column after looking at the report: dp-train takes the file as edited.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dp::app {

enum class RelabelAction : uint8_t { kKeep, kRelabel, kDrop };
const char* action_name(RelabelAction action);

// What to do with the flagged samples: relabel to the final model's prediction where it names
// another class with at least the given probability, drop the others (the model has no label it
// is sure of to offer); or drop every flagged sample (cleanlab's prune).
enum class FlaggedPolicy : uint8_t { kRelabelOrDrop, kDrop };

struct RelabelPlan {
  std::vector<RelabelAction> action;  // per training sample
  int64_t relabel = 0, drop = 0;
};

// confidences: the probability the model gives its prediction; min_confidence: the least with
// which a flagged sample is relabelled (default 0.5: the prediction outweighs all other classes).
RelabelPlan plan_relabel(const std::vector<uint8_t>& flagged, const std::vector<int64_t>& labels,
                         const std::vector<int64_t>& predictions, const std::vector<float>& confidences,
                         FlaggedPolicy policy, double min_confidence = 0.5);

struct RelabelColumns {
  const std::vector<int64_t>* labels = nullptr;
  const std::vector<int64_t>* predictions = nullptr;
  std::function<std::string(int64_t sample)> path;
  std::function<std::string(int64_t cls)> class_name;
  std::string score_name;             // the detector's key, the score column's header
  const std::vector<float>* score = nullptr;
};

// Written to a temporary file and renamed: an earlier file of the same name is replaced whole or not at all.
void write_relabel_csv(const std::string& path, const RelabelPlan& plan, const RelabelColumns& columns);

}  // namespace dp::app
