// dp-train CONFIG.toml [--set section.key=value ...] [--resume CHECKPOINT|auto | --overwrite]
// dp-train --help-config: the configuration reference (docs/config.md)
// Exit codes: 0 finished, 1 error, 75 (kExitStopped) stopped by a signal with a checkpoint written
// (continue with --resume auto; docs/long-runs.md).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <cstdio>
#include <cstdlib>

#include "dist/process_group.h"
#include "engine/error.h"
#include "app/config_reference.h"
#include "app/run_config.h"
#include "app/stop_signals.h"
#include "app/trainer.h"
#include "tools/tool_common.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-train: train an image classifier with data parameters"};
  std::string config_path;
  std::vector<std::string> overrides;
  std::string resume;
  bool quiet = false, overwrite = false;
  app.add_option("config", config_path, "TOML run configuration (see configs/)")->required();
  app.add_option("--set", overrides, "override a key, e.g. --set optim.lr=0.05 (repeatable)");
  app.add_option("--resume", resume,
                 "continue from a checkpoint written by an earlier run; auto: from run.output's checkpoint.h5 "
                 "when there is one, else start a new run (what a requeued job runs)");
  app.add_flag("--overwrite", overwrite,
               "run.output already holds a run: move it aside to OUTPUT.replaced-DATE and start a new one");
  app.add_flag("--quiet", quiet, "no progress lines");
  bool allow_data_change = false;
  app.add_flag("--allow-data-change", allow_data_change,
               "--resume on data other than the run's (the checkpoint's data fingerprint differs): warn instead of refusing");
  dp::tools::add_version_flag(app, "dp-train");
  app.add_flag_callback(
      "--help-config",
      [] {
        std::fputs(dp::app::config_reference().c_str(), stdout);
        std::exit(0);
      },
      "print the configuration reference (every key: type, default, values, meaning; docs/config.md), then exit");
  CLI11_PARSE(app, argc, argv);
  try {
    dp::app::Config config = dp::app::Config::from_file(config_path, overrides);
    dp::app::TrainerOptions options;
    options.resume = resume;
    options.quiet = quiet;
    options.overwrite = overwrite;
    options.handle_stop_signals = true;
    options.allow_data_change = allow_data_change;
    dp::app::Trainer trainer(config, options);
    if (trainer.writes()) {
      if (!trainer.replaced_run().empty())
        std::printf("dp-train: the earlier run in %s was moved aside to %s\n", trainer.output().c_str(),
                    trainer.replaced_run().c_str());
      const dp::app::RunProgress& p = trainer.progress();
      if (!trainer.resumed_from().empty() && p.mid_epoch())
        std::printf("dp-train: resumed from %s in epoch %lld after its step %lld (global step %lld)\n",
                    trainer.resumed_from().c_str(), static_cast<long long>(p.epoch + 1),
                    static_cast<long long>(p.epoch_step), static_cast<long long>(p.global_step));
      else if (!trainer.resumed_from().empty())
        std::printf("dp-train: resumed from %s after epoch %lld (global step %lld)\n", trainer.resumed_from().c_str(),
                    static_cast<long long>(p.epoch), static_cast<long long>(p.global_step));
      else if (resume == "auto")
        std::printf("dp-train: --resume auto: %s holds no checkpoint yet, starting the run\n", trainer.output().c_str());
      // On the CPU "tf32" is plain float32 (TF32 is a tensor-core format): say so instead of accepting it silently.
      const dp::app::RunConfig& rc = trainer.run_config();
      const bool cpu = rc.device.is_cpu();
      const std::string shown = cpu && rc.precision == "tf32" ? "fp32" : rc.precision;
      if (cpu && rc.precision == "tf32" && rc.precision_given)
        std::printf("dp-train: note: run.precision = \"tf32\" means fp32 on the CPU (TF32 is a GPU tensor-core mode)\n");
      std::printf("dp-train: %s on %s (%s), %lld training samples (%lld corrupted), %lld classes, output %s\n",
                  rc.arch.c_str(), rc.device.str().c_str(), shown.c_str(),
                  static_cast<long long>(trainer.run_data().train->size()),
                  static_cast<long long>(trainer.run_data().noise.num_corrupted()),
                  static_cast<long long>(trainer.run_data().num_classes), trainer.output().c_str());
    }
    dp::app::RunSummary s = trainer.run();
    if (s.stopped) {
      if (trainer.writes()) {
        const dp::app::RunProgress& p = trainer.progress();
        const std::string where = p.mid_epoch() ? fmt::format("in epoch {}, after its step {}", p.epoch + 1, p.epoch_step)
                                                : fmt::format("at the end of epoch {}", p.epoch);
        std::printf("dp-train: stopped by %s after global step %lld (%s); the checkpoint is %s\n"
                    "dp-train: continue with: dp-train %s --resume auto%s\n",
                    s.stop_signal > 0 ? dp::app::signal_name(s.stop_signal).c_str() : "a signal to another rank",
                    static_cast<long long>(p.global_step), where.c_str(), trainer.checkpoint_path().c_str(),
                    config_path.c_str(), overrides.empty() ? "" : " (with the same --set options)");
        std::fflush(stdout);
      }
      return dp::app::kExitStopped;
    }
    if (s.epochs.empty() && trainer.writes())
      std::printf("dp-train: the run in %s has finished its %lld epochs already; nothing to do\n",
                  trainer.output().c_str(), static_cast<long long>(trainer.epochs_done()));
    if (!s.epochs.empty() && trainer.writes()) {
      const auto& last = s.epochs.back();
      std::printf("dp-train: finished epoch %lld: val top1 %.2f%% (best %.2f%%), checkpoints in %s\n",
                  static_cast<long long>(last.epoch), last.val_top1, s.best_val_top1, s.output.c_str());
      if (s.skipped > 0)
        std::printf("dp-train: %lld unreadable training samples were skipped over the run (data.bad_samples = "
                    "\"skip\"); metrics.jsonl lists the first of each epoch\n",
                    static_cast<long long>(s.skipped));
      if (trainer.data_parameters().active())
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
