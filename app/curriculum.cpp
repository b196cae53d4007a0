#include "app/curriculum.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "app/checkpoint_schema.h"
#include "app/config.h"
#include "engine/error.h"
#include "train/data_parameters.h"
#include "train/sample_loss_record.h"

namespace dp::app {

namespace {

std::vector<float> sigma_of(const Tensor& theta) {
  std::vector<float> s = theta.to_float_vector();
  for (float& v : s) v = std::exp(v);
  return s;
}

}  // namespace

SampleScores sample_scores(const Checkpoint& c, const EvalResult* pass) {
  SampleScores s;
  if (c.theta_inst.defined()) s.sigma = sigma_of(c.theta_inst.theta);
  if (c.theta_class.defined()) s.class_sigma = sigma_of(c.theta_class.theta);
  if (c.sample_loss.defined()) {
    train::SampleLossRecord record(c.sample_loss.sum.numel(), Device::cpu());
    record.load(c.sample_loss.sum, c.sample_loss.count);
    s.mean_train_loss = record.mean();
  }
  if (pass != nullptr && !pass->sample_prediction.empty()) {
    s.final_loss = pass->sample_loss;
    s.margin = pass->sample_margin;
    s.prediction = pass->sample_prediction;
    s.confidence = pass->sample_confidence;
  }
  return s;
}

std::vector<Detector> label_error_detectors(const SampleScores& s) {
  std::vector<Detector> d;
  if (!s.sigma.empty())
    d.push_back({"sigma", "σ (instance)", "the learnt instance temperature: the curriculum's distrust", s.sigma});
  if (!s.mean_train_loss.empty())
    d.push_back({"mean_train_loss", "mean training loss",
                 "the sample's training loss averaged over every step that saw it (the small-loss criterion)",
                 s.mean_train_loss});
  if (s.has_pass()) {
    std::vector<float> doubt(s.final_loss.size()), flat(s.margin.size());
    for (size_t i = 0; i < doubt.size(); ++i) doubt[i] = -std::expm1(-s.final_loss[i]);  // 1 − p[label]
    for (size_t i = 0; i < flat.size(); ++i) flat[i] = 1.0f - s.margin[i];
    d.push_back({"self_confidence", "1 − self-confidence",
                 "1 − the final model's probability of the given label (ranks as the final loss)", doubt});
    d.push_back({"normalized_margin", "1 − normalised margin",
                 "the final model's p[given] − max p[other], normalised (cleanlab's normalized_margin)", flat});
  }
  return d;
}

const Detector& find_detector(const std::vector<Detector>& detectors, const std::string& key) {
  std::string known;
  for (const Detector& d : detectors) {
    if (d.key == key) return d;
    known += (known.empty() ? "" : ", ") + d.key;
  }
  DP_THROW(fmt::format("no detector '{}' for this checkpoint (available: {})", key, known.empty() ? "none" : known),
           "sigma needs learnt instance parameters, mean_train_loss a checkpoint with the loss record "
           "(/history/sample_loss_*), self_confidence and normalized_margin the per-sample pass (the dataset)");
}

std::vector<DetectorQuality> detector_quality(const std::vector<Detector>& detectors,
                                              const std::vector<uint8_t>& wrong, const std::vector<int64_t>& ks) {
  std::vector<DetectorQuality> out;
  for (const Detector& d : detectors) {
    DetectorQuality q;
    q.key = d.key;
    q.name = d.name;
    q.roc_auc = inspect::roc_auc(d.suspicion, wrong);
    q.average_precision = inspect::average_precision(d.suspicion, wrong);
    for (int64_t k : ks)
      if (k > 0 && k <= static_cast<int64_t>(wrong.size()))
        q.precision_at[k] = inspect::precision_at_k(d.suspicion, wrong, k);
    q.pr_curve = inspect::precision_recall_curve(d.suspicion, wrong);
    out.push_back(std::move(q));
  }
  return out;
}

std::string FlagRule::describe() const {
  const std::string rule = top_fraction > 0 ? fmt::format("the top {:.4g}% by {}", 100.0 * top_fraction, rank_by)
                           : rank_by == "sigma" ? fmt::format("σ above {:g}", above)
                                                : fmt::format("{} above {:g}", rank_by, above);
  return why.empty() ? rule : rule + " (" + why + ")";
}

double disputed_fraction(const std::vector<int64_t>& labels, const SampleScores& scores) {
  if (!scores.has_pass() || labels.empty()) return std::nan("");
  int64_t disputed = 0;
  for (size_t i = 0; i < labels.size(); ++i) disputed += scores.prediction[i] != labels[i];
  return static_cast<double>(disputed) / static_cast<double>(labels.size());
}

std::vector<uint8_t> flag_samples(const Detector& d, const FlagRule& rule) {
  const bool by_fraction = rule.top_fraction > 0;
  DP_CHECK(by_fraction != (rule.above >= 0),
           "flag samples either by a top fraction or by a threshold, not both nor neither",
           "give --top-fraction F (0 < F <= 1) or --sigma-above S");
  DP_CHECK(!by_fraction || rule.top_fraction <= 1.0,
           fmt::format("--top-fraction {} is not in (0, 1]", rule.top_fraction), "e.g. 0.1 for the top 10%");
  std::vector<uint8_t> flagged(d.suspicion.size(), 0);
  if (by_fraction) {
    const std::vector<int64_t> order = inspect::rank_descending(d.suspicion);
    const auto k = static_cast<size_t>(std::llround(rule.top_fraction * static_cast<double>(order.size())));
    for (size_t r = 0; r < k && r < order.size(); ++r)
      if (!std::isnan(d.suspicion[order[r]])) flagged[order[r]] = 1;
  } else {
    for (size_t i = 0; i < flagged.size(); ++i) flagged[i] = d.suspicion[i] > rule.above;
  }
  return flagged;
}

double initial_instance_sigma(const Config& config) {
  if (!config.get_bool("data_parameters.learn_inst_parameters")) return std::nan("");
  const double init = config.get_float("data_parameters.init_inst_param");
  if (config.get_bool("data_parameters.skip_clamp_data_param")) return init;
  // As the clamp sees it: log(init) rounded to float32, clamped, exponentiated.
  const float theta = std::clamp(static_cast<float>(std::log(init)), train::data_param_clamp_lo(), train::data_param_clamp_hi());
  return std::exp(static_cast<double>(theta));
}

FlagRule make_flag_rule(const std::string& rank_by, double top_fraction, double sigma_above, double initial_sigma,
                        const std::vector<int64_t>& labels, const SampleScores& scores) {
  FlagRule rule;
  rule.rank_by = rank_by;
  if (top_fraction > 0 || sigma_above >= 0) {
    DP_CHECK(sigma_above < 0 || rank_by == "sigma", "--sigma-above flags by σ, but --rank-by is " + rank_by,
             "use --top-fraction with the other detectors");
    rule.top_fraction = top_fraction;
    rule.above = sigma_above;
    return rule;
  }
  if (rank_by == "sigma" && std::isfinite(initial_sigma)) {
    rule.above = initial_sigma;
    rule.why = "the samples whose σ rose above its starting value: the curriculum raised their temperature";
    return rule;
  }
  const double disputed = disputed_fraction(labels, scores);
  const bool known = std::isfinite(disputed) && disputed > 0;
  rule.top_fraction = known ? disputed : 0.1;
  rule.why = known ? "the share of training labels the final model does not predict"
                   : "10%: no predictions to tell how many labels the model disputes";
  return rule;
}

}  // namespace dp::app
