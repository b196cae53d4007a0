// dp-inspect CHECKPOINT [--output DIR] [--top N] [--with-paths]
// Reads the curriculum a run learnt: ranks training samples by instance σ (most distrusted
// first), scores σ as a detector of the corrupted labels when the noise map is known
// (precision at k, ROC-AUC), and draws the σ histogram over epochs like the paper's figure.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "train/inspect/detection.h"
#include "train/inspect/heatmap.h"
#include "train/io/checkpoint_schema.h"
#include "train/run/run_data.h"
#include "train/run/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-inspect: what did the data parameters learn?"};
  std::string checkpoint, output;
  int64_t top = 20;
  bool with_paths = false;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--output,-o", output, "folder for the CSV, PNG and JSON (default: next to the checkpoint)");
  app.add_option("--top", top, "how many of the most distrusted samples to print");
  app.add_flag("--with-paths", with_paths, "name each sample by its file (needs the dataset)");
  CLI11_PARSE(app, argc, argv);
  try {
    // Validated: θ_inst and every noise vector have the training set's length.
    dp::io::Checkpoint f = dp::io::read_checkpoint(checkpoint);
    if (output.empty()) output = std::filesystem::path(checkpoint).parent_path().string();
    if (output.empty()) output = ".";
    std::filesystem::create_directories(output);
    DP_CHECK(f.theta_inst.defined() && f.noise, checkpoint + " has no instance-level data parameters",
             "dp-inspect reads runs with data_parameters.learn_inst_parameters = true");
    std::vector<float> sigma = f.theta_inst.theta.to_float_vector();
    for (float& s : sigma) s = std::exp(s);
    const std::vector<int64_t>& label = f.noise->label;
    const std::vector<int64_t>& original = f.noise->original_label;
    const std::vector<uint8_t>& corrupted = f.noise->is_corrupted;
    int64_t n_corrupted = 0;
    for (uint8_t c : corrupted) n_corrupted += c;

    std::shared_ptr<const dp::data::Dataset> dataset;
    if (with_paths) dataset = dp::train::make_run_data(dp::train::config_from_checkpoint(f)).train;

    std::vector<int64_t> order = dp::inspect::rank_descending(sigma);
    std::string csv_path = output + "/sigma_ranking.csv";
    std::ofstream csv(csv_path);
    csv << "rank,index,sigma,label,original_label,corrupted" << (dataset ? ",source" : "") << "\n";
    for (size_t r = 0; r < order.size(); ++r) {
      int64_t i = order[r];
      csv << r + 1 << ',' << i << ',' << sigma[i] << ',' << label[i] << ',' << original[i] << ','
          << int(corrupted[i]);
      if (dataset) csv << ",\"" << dataset->source(i) << '"';
      csv << '\n';
    }
    std::printf("most distrusted training samples (highest σ):\n  rank  index      σ  label  true  corrupted\n");
    for (int64_t r = 0; r < std::min<int64_t>(top, static_cast<int64_t>(order.size())); ++r) {
      int64_t i = order[r];
      std::printf("  %4lld  %5lld  %6.3f  %5lld  %4lld  %s%s%s\n", static_cast<long long>(r + 1),
                  static_cast<long long>(i), sigma[i], static_cast<long long>(label[i]),
                  static_cast<long long>(original[i]), corrupted[i] ? "yes" : "no", dataset ? "  " : "",
                  dataset ? dataset->source(i).c_str() : "");
    }

    nlohmann::ordered_json report;
    report["samples"] = sigma.size();
    report["corrupted"] = n_corrupted;
    if (n_corrupted > 0 && n_corrupted < static_cast<int64_t>(sigma.size())) {
      double auc = dp::inspect::roc_auc(sigma, corrupted);
      report["roc_auc"] = auc;
      for (int64_t k : {int64_t{100}, int64_t{1000}, n_corrupted})
        if (k <= static_cast<int64_t>(sigma.size()))
          report["precision_at_" + std::to_string(k)] = dp::inspect::precision_at_k(sigma, corrupted, k);
      std::printf("σ as a detector of the %lld corrupted labels: ROC-AUC %.4f, precision@%lld %.4f\n",
                  static_cast<long long>(n_corrupted), auc, static_cast<long long>(n_corrupted),
                  report["precision_at_" + std::to_string(n_corrupted)].get<double>());
    } else {
      std::printf("no label noise recorded in this run: detection metrics skipped\n");
    }
    if (!f.inst_history.counts.empty()) {
      const dp::inspect::SigmaHistory& h = f.inst_history;
      const std::vector<double>& edges = h.edges;
      std::string png = output + "/sigma_over_epochs.png";
      dp::inspect::write_heatmap_png(png, h, "instance sigma per epoch (log-spaced bins, log count)");
      std::ofstream hist_csv(output + "/sigma_over_epochs.csv");
      hist_csv << "epoch";
      for (size_t b = 0; b + 1 < edges.size(); ++b) hist_csv << ",[" << edges[b] << ";" << edges[b + 1] << ")";
      hist_csv << "\n";
      for (size_t e = 0; e < h.counts.size(); ++e) {
        hist_csv << e + 1;
        for (int64_t c : h.counts[e]) hist_csv << ',' << c;
        hist_csv << "\n";
      }
      report["sigma_over_epochs_png"] = png;
    }
    std::ofstream(output + "/inspect.json") << report.dump(2) << "\n";
    std::printf("wrote %s, %s/inspect.json%s\n", csv_path.c_str(), output.c_str(),
                report.contains("sigma_over_epochs_png") ? ", sigma_over_epochs.png/.csv" : "");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-inspect: error: %s\n", e.what());
    return 1;
  }
}
