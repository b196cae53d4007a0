#include "app/relabel.h"

#include <fmt/format.h>

#include "app/inspect/detection.h"
#include "app/output_file.h"
#include "data/csv_table.h"
#include "engine/error.h"

namespace dp::app {

const char* action_name(RelabelAction a) {
  switch (a) {
    case RelabelAction::kRelabel: return "relabel";
    case RelabelAction::kDrop: return "drop";
    case RelabelAction::kKeep: break;
  }
  return "keep";
}

RelabelPlan plan_relabel(const std::vector<uint8_t>& flagged, const std::vector<int64_t>& labels,
                         const std::vector<int64_t>& predictions, const std::vector<float>& confidences,
                         FlaggedPolicy policy, double min_confidence) {
  DP_CHECK(flagged.size() == labels.size() && predictions.size() == labels.size() &&
               confidences.size() == labels.size(),
           fmt::format("plan_relabel: {} flags, {} labels, {} predictions and {} confidences", flagged.size(),
                       labels.size(), predictions.size(), confidences.size()),
           "pass one of each per training sample");
  RelabelPlan p;
  p.action.assign(labels.size(), RelabelAction::kKeep);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!flagged[i]) continue;
    const bool sure_of_other =
        predictions[i] >= 0 && predictions[i] != labels[i] && confidences[i] >= min_confidence;
    if (policy == FlaggedPolicy::kRelabelOrDrop && sure_of_other) {
      p.action[i] = RelabelAction::kRelabel;
      ++p.relabel;
    } else {
      p.action[i] = RelabelAction::kDrop;
      ++p.drop;
    }
  }
  return p;
}

void write_relabel_csv(const std::string& path, const RelabelPlan& plan, const RelabelColumns& c) {
  const std::vector<int64_t>& labels = *c.labels;
  const std::vector<int64_t>& predictions = *c.predictions;
  const size_t n = labels.size();
  DP_CHECK(plan.action.size() == n && predictions.size() == n && c.score->size() == n,
           "write_relabel_csv: the plan, predictions and scores must cover every training sample",
           "build them from one checkpoint");
  std::vector<int64_t> rank(n);
  const std::vector<int64_t> order = inspect::rank_descending(*c.score);
  for (size_t r = 0; r < order.size(); ++r) rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r + 1);
  std::string out = fmt::format("index,path,label,label_name,suggested_label,suggested_name,action,{},rank\n",
                                data::csv_field(c.score_name));
  for (size_t i = 0; i < n; ++i) {
    const auto s = static_cast<int64_t>(i);
    out += fmt::format("{},{},{},{},{},{},{},{},{}\n", i, data::csv_field(c.path(s)), labels[i],
                       data::csv_field(c.class_name(labels[i])), predictions[i],
                       data::csv_field(c.class_name(predictions[i])), action_name(plan.action[i]), (*c.score)[i],
                       rank[i]);
  }
  write_output_file(path, out);
}

}  // namespace dp::app
