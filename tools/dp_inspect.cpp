// dp-inspect CHECKPOINT [--output DIR] [--top N] [--with-paths] [--per-sample] [--device D]
//                       [--report [--report-samples N]] [--relabel OUT.csv [--flagged relabel|drop]]
//                       [--top-fraction F | --sigma-above S] [--rank-by DETECTOR]
// Reads the curriculum a run learnt: ranks training samples (or classes, for class-level runs) by
// σ (most distrusted first), scores σ as a detector of wrong labels when the noise map is known
// (ROC-AUC, precision at k; against label != original_label, and against the set the noise
// protocol touched), draws the σ-over-epochs figures, and with --per-sample writes each training
// sample's σ, loss and prediction at the end of training. --report writes report.html (app/report.h),
// --relabel the labels to fix in the form dp-train reads back (app/relabel.h).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <optional>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/autocast.h"
#include "engine/error.h"
#include "nets/registry.h"
#include "tools/tool_common.h"
#include "app/inspect/detection.h"
#include "app/inspect/sigma_figure.h"
#include "app/checkpoint_schema.h"
#include "app/curriculum.h"
#include "app/data_fingerprint.h"
#include "app/evaluate.h"
#include "app/output_file.h"
#include "app/relabel.h"
#include "app/report.h"
#include "app/run_config.h"
#include "app/run_data.h"
#include "app/trainer.h"

namespace {

using dp::train::SampleGroup;

std::vector<float> sigma_of(const dp::Tensor& theta) {
  std::vector<float> s = theta.to_float_vector();
  for (float& v : s) v = std::exp(v);
  return s;
}

std::string csv_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// ROC-AUC and precision@k of σ as a detector of `positive` samples, into `out`; one summary line.
std::string detection(const std::vector<float>& sigma, const std::vector<uint8_t>& positive, const char* what,
                      nlohmann::ordered_json& out) {
  int64_t n = 0;
  for (uint8_t p : positive) n += p;
  out["count"] = n;
  if (n == 0 || n == static_cast<int64_t>(sigma.size())) return "";
  const double auc = dp::app::inspect::roc_auc(sigma, positive);
  out["roc_auc"] = auc;
  for (int64_t k : {int64_t{100}, int64_t{1000}, n})
    if (k <= static_cast<int64_t>(sigma.size()))
      out["precision_at_" + std::to_string(k)] = dp::app::inspect::precision_at_k(sigma, positive, k);
  return fmt::format("σ as a detector of the {} {}: ROC-AUC {:.4f}, precision@{} {:.4f}", n, what, auc, n,
                     out["precision_at_" + std::to_string(n)].get<double>());
}

void write_figure(const std::string& path, const std::vector<dp::app::inspect::SigmaPanel>& panels,
                  const std::string& title, nlohmann::ordered_json& report, const char* key) {
  if (panels.empty()) return;
  dp::app::inspect::write_sigma_figure(path, panels, title);
  report[key] = path;
  nlohmann::ordered_json means;
  for (const auto& p : panels) {
    std::vector<double> m;
    for (int64_t e = 0; e < p.history.epochs(); ++e) m.push_back(p.history.mean(e));
    means[p.name] = m;
  }
  report[std::string(key) + "_mean_sigma"] = means;
}

// Long format (one row per non-empty bin), the easiest to load into pandas or R.
void write_history_csv(const std::string& path, const dp::train::SigmaRecord& r) {
  std::ofstream csv(path);
  csv << "group,epoch,sigma_from,sigma_to,count\n";
  auto rows = [&](const char* group, const dp::train::SigmaHistory& h) {
    for (int64_t e = 0; e < h.epochs(); ++e)
      for (size_t b = 0; b + 1 < h.edges.size(); ++b)
        if (h.counts[static_cast<size_t>(e)][b] > 0)
          csv << group << ',' << e + 1 << ',' << h.edges[b] << ',' << h.edges[b + 1] << ','
              << h.counts[static_cast<size_t>(e)][b] << '\n';
  };
  for (const auto& [group, h] : r.named()) rows(group.c_str(), *h);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dp-inspect: what did the data parameters learn?"};
  std::string checkpoint, output, device = "cpu";
  int64_t top = 20;
  bool with_paths = false, per_sample = false;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--output,-o", output, "folder for the CSV, PNG and JSON (default: next to the checkpoint)");
  app.add_option("--top", top, "how many of the most distrusted samples (or classes) to print");
  app.add_flag("--with-paths", with_paths, "name each sample by its file (needs the dataset)");
  app.add_flag("--per-sample", per_sample,
               "write per_sample.csv: each training sample's path, labels, σ, loss and prediction at the end of "
               "training (runs the model over the training split; needs the dataset)");
  app.add_option("--device", device, "for the per-sample pass (--per-sample, --report, --relabel): cpu, cuda, cuda:N");
  bool report_html = false;
  int64_t report_samples = 200;
  std::string relabel, flagged_policy = "relabel", rank_by = "sigma";
  double top_fraction = -1, sigma_above = -1;
  app.add_flag("--report", report_html,
               "write report.html: the run, the σ figures, σ beside the other detectors, the most distrusted and most "
               "trusted samples with thumbnails, per class (runs the model over the training split)");
  app.add_option("--report-samples", report_samples, "samples in each grid of the report")->check(CLI::PositiveNumber);
  app.add_option("--relabel", relabel,
                 "write OUT.csv: per training sample keep / relabel (to the model's prediction) / drop; train on it "
                 "with --set data.relabel_file=OUT.csv");
  auto* fraction_opt = app.add_option("--top-fraction", top_fraction,
                                      "flag the most suspect fraction of the training samples (default by σ: those "
                                      "whose σ rose above its starting value; by another detector: the share whose "
                                      "given label the final model does not predict)");
  auto* above_opt = app.add_option("--sigma-above", sigma_above, "flag the samples with σ above S");
  fraction_opt->excludes(above_opt);
  app.add_option("--rank-by", rank_by, "the detector that ranks and flags: sigma, mean_train_loss, self_confidence, "
                                       "normalized_margin")
      ->check(CLI::IsMember({"sigma", "mean_train_loss", "self_confidence", "normalized_margin"}));
  double relabel_confidence = 0.5;
  app.add_option("--flagged", flagged_policy,
                 "relabel: a flagged sample gets the final model's prediction where the model gives another class at "
                 "least --relabel-confidence, and is dropped otherwise; drop: every flagged sample is dropped")
      ->check(CLI::IsMember({"relabel", "drop"}));
  app.add_option("--relabel-confidence", relabel_confidence,
                 "the least probability of its prediction for which the model relabels a flagged sample")
      ->check(CLI::Range(0.0, 1.0));
  bool allow_data_change = false;
  app.add_flag("--allow-data-change", allow_data_change,
               "use data other than the run's (its data fingerprint differs), warning instead of refusing");
  dp::tools::add_version_flag(app, "dp-inspect");
  CLI11_PARSE(app, argc, argv);
  try {
    // Validated by the checkpoint schema: θ and every noise vector have the training set's length.
    const dp::app::Checkpoint f = dp::app::read_checkpoint(checkpoint);
    const dp::app::Config config = dp::app::config_from_checkpoint(f);
    if (output.empty()) output = std::filesystem::path(checkpoint).parent_path().string();
    if (output.empty()) output = ".";
    std::filesystem::create_directories(output);
    const dp::Tensor* theta_inst = f.theta_inst.defined() ? &f.theta_inst.theta : nullptr;
    const dp::Tensor* theta_class = f.theta_class.defined() ? &f.theta_class.theta : nullptr;
    const bool per_sample_pass = per_sample || report_html || !relabel.empty();
    DP_CHECK(theta_inst != nullptr || theta_class != nullptr || per_sample_pass,
             checkpoint + " has no learnt data parameters",
             "dp-inspect reads runs with data_parameters.learn_inst_parameters or learn_class_parameters = true; "
             "--report, --relabel and --per-sample show what a run without them has");
    if (theta_inst == nullptr && theta_class == nullptr)
      std::printf("%s has no learnt data parameters: no σ ranking, σ figures or σ detector\n", checkpoint.c_str());
    DP_CHECK(f.noise.has_value(), checkpoint + " has no noise map (/noise/*)", "it was not written by dp-train");
    const dp::data::NoiseMap& noise = *f.noise;
    const std::vector<uint8_t> groups = dp::train::sample_groups(noise);
    std::vector<uint8_t> mislabelled(groups.size()), permuted(groups.size());
    int64_t n_mislabelled = 0, n_kept = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      mislabelled[i] = groups[i] == dp::train::kMislabelled;
      permuted[i] = groups[i] != dp::train::kUntouched;
      n_mislabelled += mislabelled[i];
      n_kept += groups[i] == dp::train::kPermutedKept;
    }

    // The dataset only when asked for (paths, per-sample): the checkpoint alone answers the rest.
    // It must be the training set the checkpoint was trained on. The report does without it
    // (placeholders instead of images, no predictions); the other parts that need it stop.
    std::optional<dp::app::RunData> data;
    std::string data_problem;
    const bool data_required = with_paths || per_sample || !relabel.empty();
    if (data_required || report_html) {
      try {
        data = dp::app::make_run_data(config);
        DP_CHECK(data->train->size() == noise.size(),
                 fmt::format("the dataset the run's configuration names has {} training samples, the checkpoint's "
                             "training set {}", data->train->size(), noise.size()),
                 "the dataset changed since the run (files added or removed): dp-inspect needs the run's data");
        // σ is attached to samples by index: only the run's own samples make sense of it.
        dp::app::check_data_fingerprint(f.data_fingerprint, dp::app::fingerprint_run_data(*data, config), checkpoint,
                                        "dp-inspect", allow_data_change);
      } catch (const std::exception& e) {
        if (data_required) throw;
        data.reset();
        data_problem = e.what();
        std::printf("the dataset is not available (%s): the report shows placeholders instead of images and no "
                    "predictions\n", data_problem.substr(0, data_problem.find('\n')).c_str());
      }
    }
    // Class names come from the dataset kind, without loading the dataset (numbers where unknown).
    const std::vector<std::string> names = dp::app::class_names(dp::app::make_data_settings(config), f.num_classes);
    auto name_of = [&](int64_t c) { return c >= 0 && c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c); };

    nlohmann::ordered_json report;
    report["checkpoint"] = checkpoint;
    report["samples"] = groups.size();
    report["noise_protocol"] = noise.protocol;
    report["mislabelled"] = n_mislabelled;
    report["noise_applied"] = n_mislabelled + n_kept;
    report["noise_applied_kept_class"] = n_kept;
    std::vector<std::string> written;

    std::vector<float> sigma;
    if (theta_inst != nullptr) {
      sigma = sigma_of(*theta_inst);
      std::vector<int64_t> order = dp::app::inspect::rank_descending(sigma);
      const std::string csv_path = output + "/sigma_ranking.csv";
      std::ofstream csv(csv_path);
      csv << "rank,index,sigma,label,original_label,corrupted,mislabelled" << (data ? ",source" : "") << "\n";
      for (size_t r = 0; r < order.size(); ++r) {
        const int64_t i = order[r];
        csv << r + 1 << ',' << i << ',' << sigma[i] << ',' << noise.label[i] << ',' << noise.original_label[i] << ','
            << int(noise.is_corrupted[i]) << ',' << int(mislabelled[i]);
        if (data) csv << ',' << csv_quoted(data->train->source(i));
        csv << '\n';
      }
      written.push_back(csv_path);
      std::printf("most distrusted training samples (highest σ):\n  rank  index       σ  label         true\n");
      for (int64_t r = 0; r < std::min<int64_t>(top, static_cast<int64_t>(order.size())); ++r) {
        const int64_t i = order[r];
        std::printf("  %4lld  %5lld  %6.3f  %-12s  %-12s%s%s%s\n", static_cast<long long>(r + 1),
                    static_cast<long long>(i), sigma[i], name_of(noise.label[i]).c_str(),
                    name_of(noise.original_label[i]).c_str(), mislabelled[i] ? "  wrong label" : "",
                    data ? "  " : "", data ? data->train->source(i).c_str() : "");
      }
      if (n_mislabelled + n_kept > 0) {
        nlohmann::ordered_json wrong, applied;
        const std::string line = detection(sigma, mislabelled, "wrong labels (label != original_label)", wrong);
        report["wrong_labels"] = wrong;
        if (!line.empty()) std::printf("%s\n", line.c_str());
        if (n_kept > 0) {
          std::printf("the noise protocol touched %lld samples; %lld of them kept their true class, so %lld labels "
                      "are wrong\n",
                      static_cast<long long>(n_mislabelled + n_kept), static_cast<long long>(n_kept),
                      static_cast<long long>(n_mislabelled));
          const std::string l2 = detection(sigma, permuted, "samples the noise protocol touched", applied);
          report["noise_applied_set"] = applied;
          if (!l2.empty()) std::printf("%s\n", l2.c_str());
        }
      } else {
        std::printf("no label noise recorded in this run: detection metrics skipped\n");
      }
    }

    if (theta_class != nullptr) {
      const std::vector<float> cs = sigma_of(*theta_class);
      const std::vector<int64_t> order = dp::app::inspect::rank_descending(cs);
      const std::string csv_path = output + "/sigma_class_ranking.csv";
      std::ofstream csv(csv_path);
      csv << "rank,class,name,sigma\n";
      for (size_t r = 0; r < order.size(); ++r)
        csv << r + 1 << ',' << order[r] << ',' << csv_quoted(name_of(order[r])) << ',' << cs[order[r]] << '\n';
      written.push_back(csv_path);
      std::printf("classes with the highest σ (the hardest or noisiest):\n");
      for (int64_t r = 0; r < std::min<int64_t>(top, static_cast<int64_t>(order.size())); ++r)
        std::printf("  %4lld  %-20s  %6.3f\n", static_cast<long long>(r + 1), name_of(order[r]).c_str(), cs[order[r]]);
    }

    const dp::train::SigmaRecord& record = f.history;
    struct Figure {
      const char* file;
      std::string title;  // ASCII: OpenCV's fonts have no σ
      const char* key;
      std::vector<dp::app::inspect::SigmaPanel> panels;
    };
    const Figure figures[] = {
        {"sigma_over_epochs.png",
         record.has_groups() ? "instance sigma per epoch: correct vs wrong labels" : "instance sigma per epoch",
         "sigma_over_epochs_png", dp::app::inspect::label_panels(record)},
        {"sigma_over_epochs_noise_applied.png", "instance sigma per epoch: samples the noise protocol touched vs the others",
         "sigma_over_epochs_noise_applied_png", dp::app::inspect::noise_applied_panels(record)},
        {"sigma_class_over_epochs.png", "class sigma per epoch", "sigma_class_over_epochs_png",
         dp::app::inspect::class_panels(record)}};
    for (const Figure& g : figures) write_figure(output + "/" + g.file, g.panels, g.title, report, g.key);
    if (!record.empty()) {
      write_history_csv(output + "/sigma_over_epochs.csv", record);
      written.push_back(output + "/sigma_over_epochs.csv");
    }
    for (const char* key : {"sigma_over_epochs_png", "sigma_over_epochs_noise_applied_png", "sigma_class_over_epochs_png"})
      if (report.contains(key)) written.push_back(report[key].get<std::string>());

    dp::app::EvalResult r;
    bool pass_done = false;
    if (per_sample_pass && data) try {
      auto model = dp::app::make_checkpoint_model(f);
      const dp::Device dev = dp::tools::checked_device(device);
      model->to(dev);
      {
        const dp::app::EvalSettings es = dp::app::make_eval_settings(config, dev);
        dp::AutocastGuard autocast(es.autocast);
        r = dp::app::evaluate(*model, data->train, data->test_transform, es.batch_size, es.workers, dev,
                              es.memory_format, /*per_sample=*/true);
      }
      std::printf("per-sample pass: %zu training samples, loss and prediction of the checkpoint's model on the "
                  "validation transforms (train accuracy against the given labels %.2f%%)\n",
                  groups.size(), r.top1);
      pass_done = true;
    } catch (const std::exception& e) {
      if (data_required) throw;  // the report goes on with thumbnails and without predictions
      data_problem = std::string("the model's pass over the training split failed: ") + e.what();
      std::printf("%s\n", data_problem.substr(0, data_problem.find('\n')).c_str());
    }
    const dp::app::SampleScores scores = dp::app::sample_scores(f, pass_done ? &r : nullptr);
    if (per_sample) {
      std::vector<float> class_sigma;
      if (theta_class != nullptr) class_sigma = sigma_of(*theta_class);
      const std::string path = output + "/per_sample.csv";
      std::ofstream csv(path);
      csv << "index,path,label,label_name,original_label,original_name,corrupted,mislabelled,sigma_inst,"
             "sigma_class,loss,prediction,prediction_name,margin,mean_train_loss\n";
      for (size_t i = 0; i < groups.size(); ++i) {
        const int64_t pred = r.sample_prediction[i];
        csv << i << ',' << csv_quoted(data->train->source(static_cast<int64_t>(i))) << ',' << noise.label[i] << ','
            << csv_quoted(name_of(noise.label[i])) << ',' << noise.original_label[i] << ','
            << csv_quoted(name_of(noise.original_label[i])) << ',' << int(noise.is_corrupted[i]) << ','
            << int(mislabelled[i]) << ',';
        if (!sigma.empty()) csv << sigma[i];
        csv << ',';
        if (!class_sigma.empty()) csv << class_sigma[static_cast<size_t>(noise.label[i])];
        csv << ',' << r.sample_loss[i] << ',' << pred << ',' << csv_quoted(name_of(pred)) << ',' << r.sample_margin[i]
            << ',';
        if (!scores.mean_train_loss.empty()) csv << scores.mean_train_loss[i];
        csv << '\n';
      }
      written.push_back(path);
      report["per_sample_csv"] = path;
    }

    // Every detector of this run side by side (σ, the mean training loss, the final model's view).
    const std::vector<dp::app::Detector> detectors = dp::app::label_error_detectors(scores);
    if (n_mislabelled > 0 && !detectors.empty()) {
      const std::vector<dp::app::DetectorQuality> quality =
          dp::app::detector_quality(detectors, mislabelled, {100, 1000, n_mislabelled});
      std::printf("detectors of the %lld wrong labels:\n", static_cast<long long>(n_mislabelled));
      for (const auto& q : quality) {
        nlohmann::ordered_json j;
        j["roc_auc"] = q.roc_auc;
        j["average_precision"] = q.average_precision;
        for (const auto& [k, p] : q.precision_at) j["precision_at_" + std::to_string(k)] = p;
        report["detectors"][q.key] = j;
        fmt::print("  {:<22}  ROC-AUC {:.4f}  average precision {:.4f}  precision@{} {:.4f}\n", q.name, q.roc_auc,
                   q.average_precision, n_mislabelled,
                   q.precision_at.count(n_mislabelled) ? q.precision_at.at(n_mislabelled) : std::nan(""));
      }
    }

    // The flag rule shared by the report's per-class table and the relabel file.
    const dp::app::FlagRule rule = dp::app::make_flag_rule(rank_by, top_fraction, sigma_above,
                                                           dp::app::initial_instance_sigma(config), noise.label, scores);

    if (!relabel.empty()) {
      const dp::app::Detector& d = dp::app::find_detector(detectors, rank_by);
      const dp::app::RelabelPlan plan = dp::app::plan_relabel(
          dp::app::flag_samples(d, rule), noise.label, scores.prediction, scores.confidence,
          flagged_policy == "drop" ? dp::app::FlaggedPolicy::kDrop : dp::app::FlaggedPolicy::kRelabelOrDrop,
          relabel_confidence);
      dp::app::RelabelColumns columns;
      columns.labels = &noise.label;
      columns.predictions = &scores.prediction;
      columns.path = [&](int64_t i) { return data->train->source(i); };
      columns.class_name = name_of;
      columns.score_name = d.key;
      columns.score = &d.suspicion;
      dp::app::write_relabel_csv(relabel, plan, columns);
      written.push_back(relabel);
      report["relabel_csv"] = relabel;
      std::printf("relabel file: %s flagged; %lld to relabel, %lld to drop, the rest kept. Retrain on it:\n"
                  "  dp-train %s --set data.relabel_file=%s --set run.output=RUN_CLEANED\n",
                  rule.describe().c_str(), static_cast<long long>(plan.relabel), static_cast<long long>(plan.drop),
                  (std::filesystem::path(checkpoint).parent_path() / "config.toml").string().c_str(),
                  std::filesystem::absolute(relabel).string().c_str());
    }

    if (report_html) {
      dp::app::ReportInputs in;
      in.checkpoint = &f;
      in.config = &config;
      in.metrics_jsonl = (std::filesystem::path(checkpoint).parent_path() / "metrics.jsonl").string();
      in.train = data ? data->train.get() : nullptr;
      in.data_problem = data_problem.substr(0, data_problem.find('\n'));
      in.pass = pass_done ? &r : nullptr;
      in.class_names = names;
      for (const Figure& g : figures)
        if (!g.panels.empty()) {
          in.sigma_figures_png.push_back(dp::app::inspect::sigma_figure_png(g.panels, g.title));
          std::string caption = g.title;  // the page can say σ
          caption.replace(caption.find("sigma"), 5, "σ");
          in.sigma_figure_titles.push_back(caption);
        }
      dp::app::ReportOptions o;
      o.samples = report_samples;
      o.flag = rule;
      o.generated_by = dp::tools::version_text("dp-inspect");
      const std::string path = output + "/report.html";
      dp::app::write_output_file(path, dp::app::render_report(in, o));
      written.push_back(path);
      report["report_html"] = path;
    }

    std::ofstream(output + "/inspect.json") << report.dump(2) << "\n";
    written.push_back(output + "/inspect.json");
    std::printf("wrote");
    for (const std::string& w : written) std::printf(" %s", w.c_str());
    std::printf("\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-inspect: error: %s\n", e.what());
    return 1;
  }
}
