// dp-eval CHECKPOINT [--data KIND --path PATH] [--device cuda] [--json OUT] [--worst N]
// Evaluates a checkpoint on a validation set with the validation transforms (docs/method.md §4): prints
// loss, top-1, top-5 and the worst classes by name; --json writes the full report (per-class
// accuracy and the confusion matrix, with class names).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/autograd.h"
#include "engine/error.h"
#include "io/npy.h"
#include "nets/registry.h"
#include "app/checkpoint_schema.h"
#include "app/evaluate.h"
#include "app/run_data.h"
#include "app/trainer.h"
#include "data/registry.h"
#include "app/data_fingerprint.h"
#include "tools/tool_common.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-eval: evaluate a dp-train checkpoint"};
  std::string checkpoint, kind, path, device = "cpu", json_out, dump;
  int64_t batch = 100, workers = 2, worst = 5;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--data", kind,
                 fmt::format("dataset kind (default: the run's): {}", fmt::join(dp::data::dataset_kind_names(), ", ")));
  app.add_option("--path", path, "dataset folder (default: the run's)");
  app.add_option("--device", device, "cpu, cuda, cuda:N");
  app.add_option("--batch-size", batch, "evaluation batch size");
  app.add_option("--workers", workers, "loader threads");
  app.add_option("--json", json_out, "also write the full JSON report (per class, confusion matrix) here ('-': standard output)");
  app.add_option("--worst", worst, "how many of the worst classes to list");
  bool allow_data_change = false;
  app.add_flag("--allow-data-change", allow_data_change,
               "evaluate on a validation set other than the run's (its data fingerprint differs): warn instead of refusing");
  app.add_option("--dump", dump,
                 "write the first batch's inputs.npy, logits.npy and labels.npy into this folder "
                 "(to compare with another framework)");
  dp::tools::add_version_flag(app, "dp-eval");
  CLI11_PARSE(app, argc, argv);
  try {
    dp::app::Checkpoint file = dp::app::read_checkpoint(checkpoint);
    dp::app::DataSettings data = dp::app::make_data_settings(dp::app::config_from_checkpoint(file));
    if (!kind.empty()) data.kind = kind;
    if (!path.empty()) data.path = path;
    const dp::data::DatasetSplit split = dp::app::make_eval_split(data);
    const auto& dataset = split.dataset;
    const dp::data::TransformSpec& transform = split.transform;
    const std::vector<std::string> names = dp::app::class_names(data, dataset->num_classes());
    dp::app::DataFingerprint fingerprint;  // the validation set alone: what dp-eval reads
    fingerprint.dataset = data.kind;
    fingerprint.test = dp::app::fingerprint_split(*dataset, names);
    dp::app::check_data_fingerprint(file.data_fingerprint, fingerprint, checkpoint, "dp-eval", allow_data_change);
    auto model = dp::app::make_checkpoint_model(file);
    dp::Device dev = dp::tools::checked_device(device);
    model->to(dev);
    dp::app::EvalResult r = dp::app::evaluate(*model, dataset, transform, batch, workers, dev);
    if (!dump.empty()) {
      dp::data::LoaderOptions lo;
      lo.batch_size = batch;
      lo.shuffle = false;
      lo.num_workers = std::max<int64_t>(1, workers);
      dp::data::Loader loader(dataset, dp::data::Transform(transform), lo);
      loader.start_epoch(0);
      auto first = loader.next();
      DP_CHECK(first.has_value(), "the evaluation set is empty", "check --data and --path");
      dp::train::BatchTensors t = dp::train::to_device(*first, dev);
      model->eval();
      dp::NoGradGuard no_grad;
      dp::Tensor logits = model->forward(t.images);
      std::filesystem::create_directories(dump);
      dp::io::write_npy(dump + "/inputs.npy", t.images);
      dp::io::write_npy(dump + "/logits.npy", logits);
      dp::io::write_npy(dump + "/labels.npy", t.labels);
    }
    std::printf("dp-eval: %s on %s (%s), %lld samples\n  loss %.4f   top-1 %.2f%%   top-5 %.2f%%\n",
                checkpoint.c_str(), data.kind.c_str(), data.path.empty() ? "built in" : data.path.c_str(),
                static_cast<long long>(r.count), r.loss, r.top1, r.top5);
    // The worst classes, each with the class it is most often mistaken for.
    std::vector<size_t> order;
    for (size_t c = 0; c < r.per_class_accuracy.size(); ++c)
      if (!std::isnan(r.per_class_accuracy[c])) order.push_back(c);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return r.per_class_accuracy[a] < r.per_class_accuracy[b]; });
    if (worst > 0 && !order.empty()) {
      std::printf("  worst classes:\n");
      for (size_t k = 0; k < std::min<size_t>(static_cast<size_t>(worst), order.size()); ++k) {
        const size_t c = order[k];
        size_t confused = c;
        int64_t most = 0;
        for (size_t p = 0; p < r.confusion[c].size(); ++p)
          if (p != c && r.confusion[c][p] > most) most = r.confusion[c][p], confused = p;
        std::printf("    %-20s %6.2f%%%s\n", names[c].c_str(), r.per_class_accuracy[c],
                    confused != c ? fmt::format("   most often taken for {} ({}x)", names[confused], most).c_str() : "");
      }
    }
    const std::string json = r.to_json(names);
    if (json_out == "-") {
      std::printf("%s\n", json.c_str());
    } else if (!json_out.empty()) {
      std::ofstream(json_out) << json << "\n";
      std::printf("  full report (per class, confusion matrix): %s\n", json_out.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-eval: error: %s\n", e.what());
    return 1;
  }
}
