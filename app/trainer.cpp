#include "app/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "kernels/ops.h"
#include "engine/error.h"
#include "nets/registry.h"
#include "app/inspect/sigma_figure.h"
#include "io/checkpoint_file.h"
#include "io/event_writer.h"
#include "io/safetensors.h"
#include "app/distributed.h"
#include "app/evaluate.h"
#include "app/run_folder.h"
#include "app/skip_report.h"

#ifdef DP_WITH_CUDA
#include "engine/cuda/context.h"
#endif

namespace dp::app {

namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

io::Histogram to_histogram(const train::SigmaStats& s) {
  io::Histogram h;
  h.min = s.lowest;
  h.max = s.highest;
  h.num = static_cast<double>(s.count);
  h.sum = s.sum;
  h.sum_squares = s.sum_squares;
  for (size_t i = 1; i < s.bucket_edges.size(); ++i) h.bucket_limit.push_back(s.bucket_edges[i]);
  for (int64_t c : s.bucket_counts) h.bucket.push_back(static_cast<double>(c));
  return h;
}

// fp32: strict float32 everywhere; tf32: float32 storage with TF32 tensor-core convolutions and
// GEMMs on CUDA (PyTorch's default); bf16: mixed precision on CUDA (bf16 activations and
// convolution/GEMM inputs, float32 master weights, BN statistics and loss; see engine/autocast.h).
// On the CPU fp32 and tf32 are plain float32 (bf16 is refused by make_run_config).
// run.cudnn_benchmark: cuDNN's algorithms are chosen by timing the candidates once per shape
// (cudnnFind) rather than by its heuristics; the first step of each shape is slower.
void apply_precision(const RunConfig& rc) {
#ifdef DP_WITH_CUDA
  if (rc.device.is_cuda()) {
    cuda::set_allow_tf32(rc.precision == "tf32");
    cuda::set_cudnn_benchmark(rc.cudnn_benchmark);
  }
#else
  (void)rc;
#endif
}

}  // namespace

Trainer::Trainer(const Config& config, TrainerOptions options)
    : config_(config), rc_(make_run_config(config)), options_(std::move(options)),
      device_(DistributedRun::device_for_rank(rc_.device, dist::process_group())) {
  const dist::ProcessGroup& group = dist::process_group();
  if (group.distributed()) {
    DistributedRun::check_batch_size(rc_.batch_size, group);
    // One predicate for rank-only work: the other ranks neither print nor write files.
    if (group.rank != 0) {
      options_.quiet = true;
      options_.write_logs = false;
    }
  }
  DP_CHECK(!device_.is_cuda() || cuda_available(),
           fmt::format("run.device = \"{}\" but no CUDA device is available", device_.str()),
           "use run.device = \"cpu\", or run on a machine with an NVIDIA GPU and a CUDA build");
  apply_precision(rc_);
  data_ = make_run_data(config_);
  model_ = nets::make_net(rc_.arch, data_.num_classes, rc_.seed);
  if (!rc_.init_from.empty()) {
    layers::StateDict init;
    for (auto& [name, t] : io::read_safetensors(rc_.init_from)) init.insert(name, t);
    model_->load_state_dict(init, /*strict=*/true);
  }
  model_->to(device_);
  sgd_ = std::make_unique<train::SGD>(model_->parameters(), rc_.sgd);
  schedule_ = make_schedule(rc_.schedule);
  data_params_ = std::make_unique<train::DataParameters>(rc_.data_params, data_.num_classes, data_.train->size(), device_);
  loss_record_ = std::make_unique<train::SampleLossRecord>(data_.train->size(), device_);

  output_ = rc_.output;
  DP_CHECK(!(options_.overwrite && !options_.resume.empty()), "--resume and --overwrite exclude each other",
           "--resume continues the run in its folder, --overwrite starts a new one there: give one of them");
  // The writing rank decides about the folder (refuse, move aside); the others only need it to exist.
  const bool writer = !group.distributed() || group.rank == 0;
  replaced_ = prepare_run_folder(output_, !writer                   ? FolderUse::kResume
                                          : !options_.resume.empty() ? FolderUse::kResume
                                          : options_.overwrite      ? FolderUse::kOverwrite
                                                                    : FolderUse::kFresh);
  io::remove_stale_temporaries(output_);  // checkpoints half-written by killed runs
  checkpoint_path_ = output_ + "/checkpoint.h5";
  best_path_ = output_ + "/best.h5";
  // Every rank loads the same checkpoint (the state of a run is global: any world size resumes it).
  if (!options_.resume.empty()) load_checkpoint(options_.resume);
  if (writer) write_run_config(output_, config_);
  if (group.distributed())
    dist_ = std::make_unique<DistributedRun>(*model_, sgd_->flat(), device_,
                                             DistributedOptions{rc_.sync_batchnorm, rc_.dist_timeout_s,
                                                                rc_.allreduce_dtype});
  train::TrainStepOptions so;
  so.autocast = rc_.autocast;
  so.cuda_graphs = rc_.cuda_graphs;
  step_ = std::make_unique<train::TrainStep>(*model_, *sgd_, *data_params_, so, dist_ ? dist_->step_sync() : nullptr);
  step_->record_sample_losses(loss_record_.get());
  if (options_.write_logs) {
    events_ = std::make_unique<io::EventWriter>(output_ + "/tb");
    metrics_.open(output_ + "/metrics.jsonl", std::ios::app);
  }
}

Trainer::~Trainer() = default;

bool Trainer::writes() const { return dist_ == nullptr || dist_->writes(); }

void Trainer::write_metrics_line(const std::string& line) {
  if (metrics_.is_open()) metrics_ << line << '\n' << std::flush;
}

void Trainer::log_sigma(const std::string& name, const Tensor& theta, int64_t step,
                        const std::vector<uint8_t>* mask, uint8_t select) {
  if (!events_) return;
  train::SigmaStats s = train::sigma_stats(theta, 30, mask, select);
  if (s.count == 0) return;
  events_->add_scalar(name + "/highest", s.highest, step);
  events_->add_scalar(name + "/lowest", s.lowest, step);
  events_->add_scalar(name + "/mean", s.mean, step);
  events_->add_scalar(name + "/std", s.std, step);
  events_->add_histogram(name, to_histogram(s), step);
}

void Trainer::record_sigma_history(int64_t epoch0) {
  sigma_record_.record_epoch(data_params_->theta_inst(), data_params_->theta_class(), train::sample_groups(data_.noise));
  if (!events_) return;
  std::vector<inspect::SigmaPanel> panels = inspect::label_panels(sigma_record_);
  if (panels.empty()) panels = inspect::class_panels(sigma_record_);
  if (panels.empty()) return;
  const inspect::SigmaFigureLayout layout = inspect::sigma_figure_layout(panels.size());
  events_->add_image("sigma_over_epochs",
                     inspect::sigma_figure_png(panels, data_params_->learn_inst() ? "instance sigma per epoch"
                                                                                   : "class sigma per epoch"),
                     layout.width, layout.height, epoch0);
}

EpochSummary Trainer::train_one_epoch() {
  const int64_t epoch = epoch_;  // 0-based, as the reference's loop variable
  const int64_t stop = rc_.last_epoch();
  data::LoaderOptions lo;
  lo.batch_size = rc_.batch_size;
  lo.seed = rc_.seed;
  lo.num_workers = rc_.workers;
  lo.bad_samples = rc_.bad_samples;
  lo.allocator = train::batch_memory_for(device_);
  if (dist_) {
    lo.rank = dist_->group().rank;
    lo.world_size = dist_->group().world_size;
  }
  data::Loader loader(data_.train, data::Transform(data_.train_transform), lo);
  loader.start_epoch(epoch);
  const int64_t iterations = loader.num_batches();
  const bool tty = isatty(fileno(stdout)) != 0;

  model_->train();
  // The step never waits for the device: batches are uploaded asynchronously, and the running
  // loss and top-1 count are summed on the device (train::TrainStep) and read (a wait) only for a log
  // line and at the end of the epoch. That is also where a NaN or infinite loss is caught.
  // In a data-parallel run a rank's totals are its share of the global batches: they are summed
  // over the ranks there (a collective; the log steps are the same on every rank, and ranks that
  // do not print reach it too), so every rank logs and checks the global batch's values.
  train::BatchUploader uploader(device_, rc_.memory_format);
  step_->reset_totals();
  auto read_totals = [&] {
    const train::StepTotals local = step_->totals();
    return dist_ ? dist_->sum_over_ranks(local) : local;
  };
  int64_t i = 0, checked_step = global_step_;
  auto check_finite = [&](double loss_total) {
    DP_CHECK(std::isfinite(loss_total),
             fmt::format("the loss became {} at epoch {}, between global steps {} and {}", loss_total, epoch + 1,
                         checked_step + 1, global_step_),
             fmt::format("lower optim.lr or the data-parameter learning rates; the last good checkpoint is {}",
                         std::filesystem::exists(checkpoint_path_) ? checkpoint_path_ : "(none yet)"));
    checked_step = global_step_;
  };
  auto start = Clock::now();
  while (auto batch = loader.next()) {
    const double lr = schedule_->lr(static_cast<double>(epoch) + static_cast<double>(i) / iterations);
    if (dist_) dist_->begin_step(loader, i);
    step_->run(uploader.upload(std::move(*batch)), lr);
    ++global_step_;
    if (i % rc_.print_freq == 0) {
      const train::StepTotals t = read_totals();
      check_finite(t.loss_sum);
      const double seen = static_cast<double>(t.samples);
      const double avg_loss = t.loss_sum / seen;
      const double top1 = 100.0 * static_cast<double>(t.top1) / seen;
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      const double per_iter = secs / static_cast<double>(i + 1);
      // Training left plus the evaluations left (this epoch's included), timed by the last one.
      const double eta = per_iter * static_cast<double>((iterations - i - 1) + (stop - epoch - 1) * iterations) +
                         eval_seconds_ * static_cast<double>(stop - epoch);
      if (!options_.quiet) {
        std::string line = fmt::format(
            "epoch {}/{}  step {}/{}  loss {:.4f}  top1 {:.2f}%  {:.0f} img/s  ETA {}  lr {:.4g}", epoch + 1, stop,
            i + 1, iterations, avg_loss, top1, seen / std::max(secs, 1e-9), format_duration(eta), lr);
        if (data_params_->learn_class()) line += fmt::format("  lr_class {:.4g}", rc_.data_params.lr_class_param);
        if (data_params_->learn_inst()) line += fmt::format("  lr_inst {:.4g}", rc_.data_params.lr_inst_param);
        if (loader.epoch_skips().count > 0) line += fmt::format("  skipped {}", loader.epoch_skips().count);
        std::printf(tty ? "\r%s\033[K" : "%s\n", line.c_str());
        std::fflush(stdout);
      }
      if (events_) {
        events_->add_scalar("train_iteration_stats/accuracy_top1", top1, global_step_);
        events_->add_scalar("train_iteration_stats/loss", avg_loss, global_step_);
        events_->add_scalar("train_iteration_stats/epoch", static_cast<double>(epoch), global_step_);
        events_->add_scalar("train_iteration_stats/lr", lr, global_step_);
      }
      if (data_params_->learn_class())
        log_sigma("iter_stats_class_parameter", data_params_->theta_class(), global_step_, nullptr, 1);
      if (data_params_->learn_inst())
        log_sigma("iter_stats_inst_parameter", data_params_->theta_inst(), global_step_, nullptr, 1);
      write_metrics_line(nlohmann::json{{"type", "iteration"}, {"epoch", epoch + 1}, {"step", global_step_},
                                        {"loss", avg_loss}, {"top1", top1}, {"lr", lr}}
                             .dump());
    }
    ++i;
  }
  if (tty && !options_.quiet) std::printf("\n");
  const train::StepTotals t = read_totals();  // waits for the epoch's last step
  check_finite(t.loss_sum);
  EpochSummary s;
  s.epoch = epoch + 1;
  s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double seen = static_cast<double>(t.samples);
  s.train_loss = t.samples ? t.loss_sum / seen : 0.0;
  s.train_top1 = t.samples ? 100.0 * static_cast<double>(t.top1) / seen : 0.0;
  s.skipped = loader.epoch_skips();
  // The whole job's count, so that data.max_skipped_fraction compares like with like (global
  // samples) and every rank makes the same decision; the examples listed stay this rank's.
  if (dist_) s.skipped.count = dist_->sum_over_ranks(s.skipped.count);
  s.samples = t.samples + s.skipped.count;
  return s;
}

RunSummary Trainer::run() {
  RunSummary summary;
  summary.output = output_;
  const int64_t stop = rc_.last_epoch();
  const std::vector<uint8_t>& corrupted = data_.noise.is_corrupted;
  const bool noisy = data_.noise.num_corrupted() > 0;
  while (epoch_ < stop) {
    EpochSummary s = train_one_epoch();
    if (dist_) dist_->broadcast_batchnorm_statistics();  // rank 0's, before evaluating and saving
    EvalResult val;
    {
      const auto eval_start = Clock::now();
      AutocastGuard autocast(rc_.autocast);
      // Data-parallel: each rank evaluates its share and every rank gets the reduced result.
      val = evaluate(*model_, data_.test, data_.test_transform, rc_.eval_batch_size, rc_.workers, device_,
                     rc_.memory_format, /*per_sample=*/false, dist_ ? &dist_->host_communicator() : nullptr);
      eval_seconds_ = std::chrono::duration<double>(Clock::now() - eval_start).count();
    }
    s.val_loss = val.loss;
    s.val_top1 = val.top1;
    s.val_top5 = val.top5;
    const int64_t epoch0 = epoch_;  // the reference logs epoch scalars at the 0-based epoch
    ++epoch_;
    record_sigma_history(epoch0);
    if (events_) {
      events_->add_scalar("train/skipped_samples", static_cast<double>(s.skipped.count), epoch0);
      events_->add_scalar("train/lr", schedule_->lr(static_cast<double>(epoch0)), epoch0);  // at the epoch's start
      if (data_params_->learn_class())
        events_->add_scalar("train/lr_class_param", data_params_->config().lr_class_param, epoch0);
      if (data_params_->learn_inst())
        events_->add_scalar("train/lr_inst_param", data_params_->config().lr_inst_param, epoch0);
      events_->add_scalar("train/accuracy", s.train_top1, epoch0);
      events_->add_scalar("train/loss", s.train_loss, epoch0);
      events_->add_scalar("val/accuracy", s.val_top1, epoch0);
      events_->add_scalar("val/loss", s.val_loss, epoch0);
      if (data_params_->learn_class())
        log_sigma("epochs_stats_class_parameter", data_params_->theta_class(), epoch0, nullptr, 1);
      if (data_params_->learn_inst()) {
        log_sigma("epoch_stats_inst_parameter", data_params_->theta_inst(), epoch0, nullptr, 1);
        if (noisy) {
          log_sigma("epoch_stats_corrupt_inst_parameter", data_params_->theta_inst(), epoch0, &corrupted, 1);
          log_sigma("epoch_stats_clean_inst_parameter", data_params_->theta_inst(), epoch0, &corrupted, 0);
        }
      }
      events_->flush();
    }
    nlohmann::json line{{"type", "epoch"}, {"epoch", s.epoch}, {"train_loss", s.train_loss},
                        {"train_top1", s.train_top1}, {"val_loss", s.val_loss}, {"val_top1", s.val_top1},
                        {"val_top5", s.val_top5}, {"seconds", s.seconds}, {"global_step", global_step_}};
    if (data_params_->learn_inst() && noisy) {
      train::SigmaStatsSplit split = train::sigma_stats_split(data_params_->theta_inst(), corrupted);
      line["sigma_inst_corrupted_mean"] = split.corrupted.mean;
      line["sigma_inst_clean_mean"] = split.clean.mean;
    }
    if (s.skipped.count > 0) line["skipped"] = skips_json(s.skipped);
    write_metrics_line(line.dump());
    summary.skipped += s.skipped.count;
    if (!options_.quiet && s.skipped.count > 0)
      std::printf("epoch %lld: %s\n", static_cast<long long>(s.epoch), describe_skips(s.skipped).c_str());
    // Logged first, so the record of what was skipped survives the stop.
    check_skipped_fraction(s.skipped, s.samples, rc_.max_skipped_fraction, s.epoch);
    // The best score is part of the state: update it before checkpoint.h5 records it, or a resumed
    // run would compare against a stale best and could replace best.h5 with a worse model.
    const bool improved = s.val_top1 > best_top1_;
    if (improved) {
      best_top1_ = s.val_top1;
      best_epoch_ = s.epoch;  // every rank evaluates the same model: the same decision
    }
    if (writes()) save_checkpoint(checkpoint_path_);
    if (improved && writes()) save_checkpoint(best_path_);
    if (!options_.quiet)
      std::printf("epoch %lld/%lld done in %.1f s: train loss %.4f top1 %.2f%% | val loss %.4f top1 %.2f%% top5 %.2f%%%s\n",
                  static_cast<long long>(s.epoch), static_cast<long long>(stop), s.seconds, s.train_loss,
                  s.train_top1, s.val_loss, s.val_top1, s.val_top5,
                  line.contains("sigma_inst_corrupted_mean")
                      ? fmt::format(" | mean σ_inst corrupted {:.3f} clean {:.3f}",
                                    line["sigma_inst_corrupted_mean"].get<double>(),
                                    line["sigma_inst_clean_mean"].get<double>())
                            .c_str()
                      : "");
    summary.epochs.push_back(s);
  }
  summary.best_val_top1 = best_top1_;
  summary.best_epoch = best_epoch_;
  return summary;
}

}  // namespace dp::app
