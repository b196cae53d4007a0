// dp-eval CHECKPOINT [--data KIND --path PATH] [--device cuda] [--json OUT]
// Evaluates a checkpoint on a validation set with the validation transforms (SPEC §4):
// top-1, top-5, per-class accuracy, loss and the confusion matrix, as JSON.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/autograd.h"
#include "engine/error.h"
#include "train/io/npy.h"
#include "nets/registry.h"
#include "train/io/checkpoint_schema.h"
#include "train/run/evaluate.h"
#include "train/run/run_data.h"
#include "train/run/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-eval: evaluate a dp-train checkpoint"};
  std::string checkpoint, kind, path, device = "cpu", json_out, dump;
  int64_t batch = 100, workers = 2;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--data", kind, "dataset kind (default: the run's): synthetic, cifar10, cifar100, cifar10-jpeg, imagefolder, packed, packed-imagenet");
  app.add_option("--path", path, "dataset folder (default: the run's)");
  app.add_option("--device", device, "cpu, cuda, cuda:N");
  app.add_option("--batch-size", batch, "evaluation batch size");
  app.add_option("--workers", workers, "loader threads");
  app.add_option("--json", json_out, "write the JSON report here instead of standard output");
  app.add_option("--dump", dump,
                 "write the first batch's inputs.npy, logits.npy and labels.npy into this folder "
                 "(to compare with another framework)");
  CLI11_PARSE(app, argc, argv);
  try {
    dp::io::Checkpoint file = dp::io::read_checkpoint(checkpoint);
    dp::train::Config config = dp::train::config_from_checkpoint(file);
    if (kind.empty()) kind = config.get_string("data.dataset");
    if (path.empty()) path = config.get_string("data.path");
    dp::data::TransformSpec transform;
    auto dataset = dp::train::make_eval_dataset(kind, path, config.get_int("data.image_size"),
                                                static_cast<uint64_t>(config.get_int("run.seed")),
                                                config.get_int("data.synthetic_test_size"),
                                                config.get_int("data.num_classes"), transform);
    auto model = dp::io::make_checkpoint_model(file);
    dp::Device dev = dp::parse_device(device);
    model->to(dev);
    dp::train::EvalResult r = dp::train::evaluate(*model, dataset, transform, batch, workers, dev);
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
    std::string json = r.to_json();
    if (json_out.empty()) {
      std::printf("%s\n", json.c_str());
    } else {
      std::ofstream(json_out) << json << "\n";
      std::printf("dp-eval: %lld samples: top1 %.2f%%, top5 %.2f%%, loss %.4f -> %s\n",
                  static_cast<long long>(r.count), r.top1, r.top5, r.loss, json_out.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-eval: error: %s\n", e.what());
    return 1;
  }
}
