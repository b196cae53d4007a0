// dp-train CONFIG.toml [--set section.key=value ...] [--resume CHECKPOINT]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/dist/process_group.h"
#include "engine/error.h"
#include "train/run/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-train: train an image classifier with data parameters"};
  std::string config_path;
  std::vector<std::string> overrides;
  std::string resume;
  bool quiet = false;
  app.add_option("config", config_path, "TOML run configuration (see configs/)")->required();
  app.add_option("--set", overrides, "override a key, e.g. --set optim.lr=0.05 (repeatable)");
  app.add_option("--resume", resume, "continue from a checkpoint written by an earlier run");
  app.add_flag("--quiet", quiet, "no progress lines");
  CLI11_PARSE(app, argc, argv);
  try {
    dp::train::Config config = dp::train::Config::from_file(config_path, overrides);
    dp::train::TrainerOptions options;
    options.resume = resume;
    options.quiet = quiet;
    dp::train::Trainer trainer(config, options);
    if (trainer.writes())
      std::printf("dp-train: %s on %s, %lld training samples (%lld corrupted), %lld classes, output %s\n",
                config.get_string("model.arch").c_str(), config.get_string("run.device").c_str(),
                static_cast<long long>(trainer.run_data().train->size()),
                static_cast<long long>(trainer.run_data().noise.num_corrupted()),
                static_cast<long long>(trainer.run_data().num_classes), trainer.checkpoint_path().c_str());
    dp::train::RunSummary s = trainer.run();
    if (!s.epochs.empty() && trainer.writes()) {
      const auto& last = s.epochs.back();
      std::printf("dp-train: finished epoch %lld: val top1 %.2f%% (best %.2f%%), checkpoints in %s\n",
                  static_cast<long long>(last.epoch), last.val_top1, s.best_val_top1, s.output.c_str());
      if (trainer.data_parameters().learn_inst())
        std::printf("dp-train: see what the data parameters learnt: dp-inspect %s\n", trainer.checkpoint_path().c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-train: error: %s\n", e.what());
    // In a data-parallel job the other ranks would wait for this one in their next collective:
    // end them all now, naming this rank (returns in a single process).
    dp::dist::abort_job_after_error(std::string("stopped by the error above: ") + e.what());
    return 1;
  }
}
