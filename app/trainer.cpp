#include "app/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/autocast.h"
#include "engine/autograd.h"
#include "kernels/ops.h"
#include "engine/error.h"
#include "nets/registry.h"
#include "app/inspect/sigma_figure.h"
#include "io/checkpoint_file.h"
#include "io/event_file.h"
#include "io/event_writer.h"
#include "io/safetensors.h"
#include "app/background_saver.h"
#include "app/checkpoint_schema.h"
#include "app/data_fingerprint.h"
#include "app/distributed.h"
#include "app/evaluate.h"
#include "app/run_folder.h"
#include "app/skip_report.h"
#include "app/stop_signals.h"

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

// TensorBoard tags logged once per epoch at the 0-based epoch (train/, val/, epoch(s)_stats_*,
// the σ figure), as opposed to those logged at the global step (train_iteration_stats/,
// iter_stats_*): a resumed run trims the two kinds by different counters.
bool logged_per_epoch(const std::string& tag) {
  for (const char* prefix : {"train/", "val/", "epoch", "sigma_over_epochs"})
    if (tag.rfind(prefix, 0) == 0) return true;
  return false;
}

// metrics.jsonl without the lines a resumed run will write again: iteration lines after global
// step `step`, epoch lines after epoch `epoch`, and a line cut short by a kill.
void trim_metrics(const std::string& path, int64_t step, int64_t epoch) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept;
  bool dropped = false;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool keep = j.is_object() && ((j.value("type", "") == "iteration" && j.value("step", INT64_MAX) <= step) ||
                                        (j.value("type", "") == "epoch" && j.value("epoch", INT64_MAX) <= epoch));
    if (keep) kept += line + '\n';
    dropped = dropped || !keep;
  }
  if (dropped) io::write_file_atomic(path, kept);
}

// The first samples skipped so far in an epoch resumed mid-way: those before the resume, then the loader's.
data::SkipReport merged_skips(const data::SkipReport& before, int64_t count_before, const data::SkipReport& since) {
  data::SkipReport r;
  for (const auto* part : {&before, &since})
    for (const data::SkippedSample& s : part->first) r.add(s);
  r.count = count_before + since.count;
  return r;
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
  output_ = rc_.output;
  DP_CHECK(!(options_.overwrite && !options_.resume.empty()), "--resume and --overwrite exclude each other",
           "--resume continues the run in its folder, --overwrite starts a new one there: give one of them");
  // The writing rank decides about the folder (refuse, move aside, finish an interrupted save);
  // the others only need it to exist. Its lock comes before the datasets are built (a folder scan
  // of minutes at ImageNet scale): a second dp-train on a running run's folder is refused at once.
  const bool writer = !group.distributed() || group.rank == 0;
  const FolderUse use = !writer                   ? FolderUse::kResume
                        : !options_.resume.empty() ? FolderUse::kResume
                        : options_.overwrite      ? FolderUse::kOverwrite
                                                  : FolderUse::kFresh;
  if (writer) lock_run_folder(output_, use, run_lock_);  // one writer per folder (app/run_lock.h)
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

  replaced_ = prepare_run_folder(output_, use, writer ? &run_lock_ : nullptr);  // keeps the lock taken above
  checkpoint_path_ = output_ + "/checkpoint.h5";
  best_path_ = output_ + "/best.h5";
  if (writer) {
    io::remove_stale_temporaries(output_);  // checkpoints half-written by killed runs
    const std::string recovered = recover_commit(output_);
    if (!recovered.empty() && !options_.quiet) std::printf("dp-train: %s: %s\n", output_.c_str(), recovered.c_str());
    data_fingerprint_ = fingerprint_run_data(data_, config_).to_json();
  }
  if (group.distributed())
    dist_ = std::make_unique<DistributedRun>(*model_, sgd_->flat(), device_,
                                             DistributedOptions{rc_.sync_batchnorm, rc_.dist_timeout_s,
                                                                rc_.allreduce_dtype});
  // Every rank loads the same checkpoint (the state of a run is global: any world size resumes
  // it), once rank 0 has finished an interrupted save; with "auto", rank 0's look decides.
  std::string resume = options_.resume;
  if (resume == "auto" || dist_) {
    Tensor found = Tensor::from_vector(
        std::vector<int64_t>{writer && std::filesystem::exists(checkpoint_path_) ? 1 : 0}, {1});
    if (dist_) dist_->host_communicator().broadcast(found, 0);
    if (resume == "auto") resume = found.data<int64_t>()[0] != 0 ? checkpoint_path_ : "";
  }
  progress_.seed = static_cast<int64_t>(rc_.seed);
  if (!resume.empty()) {
    load_checkpoint(resume);
    resumed_from_ = resume;
    // The folder's checkpoint.h5 already holds this state (not so after --resume of another file).
    std::error_code ec;
    if (std::filesystem::equivalent(resume, checkpoint_path_, ec)) last_saved_step_ = progress_.global_step;
  }
  if (writer) {
    if (!options_.resume.empty()) trim_logs_to_progress();
    write_run_config(output_, config_);
  }
  train::TrainStepOptions so;
  so.autocast = rc_.autocast;
  so.cuda_graphs = rc_.cuda_graphs;
  step_ = std::make_unique<train::TrainStep>(*model_, *sgd_, *data_params_, so, dist_ ? dist_->step_sync() : nullptr);
  step_->record_sample_losses(loss_record_.get());
  if (options_.write_logs) {
    // A file of its own per session (pid and step in the name): a run resumed within the same
    // second must not truncate the stopped run's file.
    events_ = std::make_unique<io::EventWriter>(
        output_ + "/tb", fmt::format("dp-engine.step{}.{}", progress_.global_step, ::getpid()));
    metrics_ = io::LineLog(output_ + "/metrics.jsonl");
  }
  saver_ = std::make_unique<BackgroundSaver>(output_);
  saver_->probe = options_.commit_probe;
  last_save_time_ = Clock::now();
}

Trainer::~Trainer() = default;

std::vector<std::string> Trainer::parameter_names() const {
  std::vector<std::string> names;
  for (const auto& [name, p] : model_->named_parameters()) names.push_back(name);
  return names;
}

void Trainer::trim_logs_to_progress() {
  trim_metrics(output_ + "/metrics.jsonl", progress_.global_step, progress_.epoch);
  std::error_code ec;
  for (std::filesystem::directory_iterator it(output_ + "/tb", ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      try {
        io::trim_event_file(it->path().string(), [&](const std::string& tag, int64_t step) {
          return logged_per_epoch(tag) ? step < progress_.epoch : step <= progress_.global_step;
        });
      } catch (const Error& e) {  // a damaged log must not keep the run from resuming
        std::fprintf(stderr, "dp-train: warning: %s (TensorBoard may show the steps after the checkpoint twice)\n",
                     e.message().c_str());
      }
    }
}

bool Trainer::writes() const { return dist_ == nullptr || dist_->writes(); }

void Trainer::write_metrics_line(const std::string& line) {
  if (!metrics_.is_open()) return;
  try {
    metrics_.append(line);
  } catch (const Error& e) {
    DP_THROW(e.message(), e.hint() + "; the run's checkpoints are intact: continue with --resume auto");
  }
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

// Before every step and after an epoch's last one: whether to stop or save here, the same
// decision on every rank (a flag summed over the ranks at each boundary; a rank that does not come
// ends the job after run.dist_timeout_s, like any collective). Stop signals may reach the ranks at
// different moments (or only some of them); run.checkpoint_every in minutes is rank 0's clock.
Trainer::Boundary Trainer::at_step_boundary(int64_t epoch_step, int64_t iterations) {
  bool due = false;
  if (progress_.global_step != last_saved_step_ && epoch_step > 0 && epoch_step < iterations) {
    due = rc_.checkpoint_every_steps > 0 && progress_.global_step % rc_.checkpoint_every_steps == 0;
    const double minutes = std::chrono::duration<double>(Clock::now() - last_save_time_).count() / 60.0;
    due = due || (rc_.checkpoint_every_minutes > 0 && writes() && minutes >= rc_.checkpoint_every_minutes);
  }
  const int signal = stop_signals_ ? StopSignals::received() : 0;
  Boundary b;
  b.stop_signal = signal;
  b.save = due;
  if (dist_) {
    Tensor flags = Tensor::from_vector(std::vector<int64_t>{signal != 0 ? 1 : 0, due ? 1 : 0}, {2});
    dist_->host_communicator().all_reduce(flags);
    const int64_t* f = flags.data<int64_t>();
    b.stop_signal = f[0] == 0 ? 0 : signal != 0 ? signal : -1;
    b.save = f[1] != 0;
  }
  return b;
}

Trainer::EpochOutcome Trainer::train_one_epoch() {
  const int64_t epoch = progress_.epoch;  // 0-based, as the reference's loop variable
  const int64_t stop = rc_.last_epoch();
  data::LoaderOptions lo;
  lo.batch_size = rc_.batch_size;
  lo.seed = rc_.seed;
  lo.num_workers = rc_.workers;
  lo.bad_samples = rc_.bad_samples;
  lo.allocator = train::batch_memory_for(device_);
  const int rank = dist_ ? dist_->group().rank : 0;
  const int world = dist_ ? dist_->group().world_size : 1;
  lo.rank = rank;
  lo.world_size = world;
  data::Loader loader(data_.train, data::Transform(data_.train_transform), lo);
  const int64_t iterations = loader.num_batches();
  // A checkpoint written mid-epoch resumes at its step, with the sums of the steps before it.
  const int64_t first = progress_.epoch_step;
  DP_CHECK(first <= iterations,
           fmt::format("the checkpoint was written after step {} of epoch {}, which has only {} steps here", first,
                       epoch + 1, iterations),
           "resume with the dataset and optim.batch_size the run was started with");
  const EpochSoFar carried = progress_.mid_epoch() ? progress_.resumed_sums(rank, world) : EpochSoFar{};
  const data::SkipReport skipped_before = progress_.mid_epoch() ? progress_.skipped_first : data::SkipReport{};
  const double seconds_before = progress_.mid_epoch() ? progress_.epoch_seconds : 0.0;
  loader.start_epoch(epoch, first);
  const bool tty = isatty(fileno(stdout)) != 0;

  model_->train();
  // The step never waits for the device: batches are uploaded asynchronously, and the running
  // loss and top-1 count are summed on the device (train::TrainStep) and read (a wait) only for a log
  // line, a checkpoint and at the end of the epoch. That is also where a NaN or infinite loss is caught.
  // In a data-parallel run a rank's totals are its share of the global batches: they are summed
  // over the ranks there (a collective; the log steps are the same on every rank, and ranks that
  // do not print reach it too), so every rank logs and checks the global batch's values.
  train::BatchUploader uploader(device_, rc_.memory_format);
  step_->restore_totals(carried.totals);
  auto read_totals = [&] {
    const train::StepTotals local = step_->totals();
    return dist_ ? dist_->sum_over_ranks(local) : local;
  };
  int64_t checked_step = progress_.global_step;
  auto check_finite = [&](double loss_total) {
    DP_CHECK(std::isfinite(loss_total),
             fmt::format("the loss became {} at epoch {}, between global steps {} and {}", loss_total, epoch + 1,
                         checked_step + 1, progress_.global_step),
             fmt::format("lower optim.lr or the data-parameter learning rates; the last good checkpoint is {}",
                         std::filesystem::exists(checkpoint_path_) ? checkpoint_path_ : "(none yet)"));
    checked_step = progress_.global_step;
  };
  auto start = Clock::now();
  auto seconds = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - start).count(); };
  auto so_far = [&] {
    EpochSoFar mine;
    mine.totals = step_->totals();
    mine.skipped = carried.skipped + loader.epoch_skips().count;
    progress_.epoch_seconds = seconds();
    progress_.skipped_first = merged_skips(skipped_before, carried.skipped, loader.epoch_skips());
    return mine;
  };
  EpochOutcome out;
  for (int64_t i = first;; ++i) {
    const Boundary boundary = at_step_boundary(i, iterations);
    if (boundary.save || (boundary.stop_signal != 0 && progress_.global_step != last_saved_step_)) {
      const EpochSoFar mine = so_far();
      check_finite(dist_ ? dist_->sum_over_ranks(mine.totals).loss_sum : mine.totals.loss_sum);
      save_mid_epoch(mine);
    }
    if (boundary.stop_signal != 0) {
      out.stopped = true;
      out.stop_signal = boundary.stop_signal;
      return out;
    }
    if (i == iterations) break;
    std::optional<data::Batch> batch = loader.next();
    DP_CHECK(batch.has_value(), fmt::format("the loader ended epoch {} after {} of its {} batches", epoch + 1, i, iterations),
             "this is a bug in dp-engine's loader; please report it");
    const double lr = schedule_->lr(static_cast<double>(epoch) + static_cast<double>(i) / iterations);
    if (dist_) dist_->begin_step(loader, i);
    step_->run(uploader.upload(std::move(*batch)), lr);
    ++progress_.global_step;
    progress_.epoch_step = i + 1;
    if (options_.after_step) options_.after_step(*this);
    if (i % rc_.print_freq == 0) {
      const train::StepTotals t = read_totals();
      check_finite(t.loss_sum);
      const double seen = static_cast<double>(t.samples);
      const double avg_loss = t.loss_sum / seen;
      const double top1 = 100.0 * static_cast<double>(t.top1) / seen;
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      const double per_iter = secs / static_cast<double>(i + 1 - first);
      // Training left plus the evaluations left (this epoch's included), timed by the last one.
      const double eta = per_iter * static_cast<double>((iterations - i - 1) + (stop - epoch - 1) * iterations) +
                         eval_seconds_ * static_cast<double>(stop - epoch);
      if (!options_.quiet) {
        const double rate = static_cast<double>(i + 1 - first) * static_cast<double>(rc_.batch_size) / std::max(secs, 1e-9);
        std::string line = fmt::format(
            "epoch {}/{}  step {}/{}  loss {:.4f}  top1 {:.2f}%  {:.0f} img/s  ETA {}  lr {:.4g}", epoch + 1, stop,
            i + 1, iterations, avg_loss, top1, rate, format_duration(eta), lr);
        if (data_params_->learn_class()) line += fmt::format("  lr_class {:.4g}", rc_.data_params.lr_class_param);
        if (data_params_->learn_inst()) line += fmt::format("  lr_inst {:.4g}", rc_.data_params.lr_inst_param);
        const int64_t skipped = carried.skipped + loader.epoch_skips().count;
        if (skipped > 0) line += fmt::format("  skipped {}", skipped);
        std::printf(tty ? "\r%s\033[K" : "%s\n", line.c_str());
        std::fflush(stdout);
      }
      const int64_t step = progress_.global_step;
      if (events_) {
        events_->add_scalar("train_iteration_stats/accuracy_top1", top1, step);
        events_->add_scalar("train_iteration_stats/loss", avg_loss, step);
        events_->add_scalar("train_iteration_stats/epoch", static_cast<double>(epoch), step);
        events_->add_scalar("train_iteration_stats/lr", lr, step);
      }
      if (data_params_->learn_class())
        log_sigma("iter_stats_class_parameter", data_params_->theta_class(), step, nullptr, 1);
      if (data_params_->learn_inst())
        log_sigma("iter_stats_inst_parameter", data_params_->theta_inst(), step, nullptr, 1);
      write_metrics_line(nlohmann::json{{"type", "iteration"}, {"epoch", epoch + 1}, {"step", step},
                                        {"loss", avg_loss}, {"top1", top1}, {"lr", lr}}
                             .dump());
    }
  }
  if (tty && !options_.quiet) std::printf("\n");
  const train::StepTotals t = read_totals();  // waits for the epoch's last step
  check_finite(t.loss_sum);
  EpochSummary& s = out.summary;
  s.epoch = epoch + 1;
  s.seconds = seconds();
  const double seen = static_cast<double>(t.samples);
  s.train_loss = t.samples ? t.loss_sum / seen : 0.0;
  s.train_top1 = t.samples ? 100.0 * static_cast<double>(t.top1) / seen : 0.0;
  s.skipped = merged_skips(skipped_before, carried.skipped, loader.epoch_skips());
  // The whole job's count, so that data.max_skipped_fraction compares like with like (global
  // samples) and every rank makes the same decision; the examples listed stay this rank's.
  if (dist_) s.skipped.count = dist_->sum_over_ranks(s.skipped.count);
  s.samples = t.samples + s.skipped.count;
  return out;
}

RunSummary Trainer::run() {
  try {
    return run_epochs();
  } catch (...) {
    // The last save completes before the error leaves (its own error, if any, is secondary).
    try {
      saver_->wait();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dp-train: error: %s\n", e.what());
    }
    stop_signals_.reset();
    throw;
  }
}

RunSummary Trainer::run_epochs() {
  RunSummary summary;
  summary.output = output_;
  const int64_t stop = rc_.last_epoch();
  const std::vector<uint8_t>& corrupted = data_.noise.is_corrupted;
  const bool noisy = data_.noise.num_corrupted() > 0;
  if (!rc_.stop_signals.empty() && options_.handle_stop_signals)
    stop_signals_ = std::make_unique<StopSignals>(rc_.stop_signals, !options_.quiet);
  while (progress_.epoch < stop) {
    EpochOutcome outcome = train_one_epoch();
    if (outcome.stopped) {
      // Every rank stops here; the checkpoint of this step is on disk before any of them exits
      // (a launcher such as mpirun ends the job when the first rank exits with a non-zero code).
      saver_->wait();
      if (dist_) dist_->host_communicator().barrier();
      summary.stopped = true;
      summary.stop_signal = outcome.stop_signal;
      break;
    }
    EpochSummary& s = outcome.summary;
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
    const int64_t epoch0 = progress_.epoch;  // the reference logs epoch scalars at the 0-based epoch
    ++progress_.epoch;
    progress_.epoch_step = 0;
    progress_.ranks.clear();
    progress_.skipped_first = {};
    progress_.epoch_seconds = 0.0;
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
                        {"val_top5", s.val_top5}, {"seconds", s.seconds}, {"global_step", progress_.global_step}};
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
    const bool improved = s.val_top1 > progress_.best_val_top1;
    if (improved) {
      progress_.best_val_top1 = s.val_top1;
      progress_.best_epoch = s.epoch;  // every rank evaluates the same model: the same decision
    }
    save_epoch_end(improved);
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
  saver_->wait();  // the last save is on disk (its error, if any, is this run's)
  stop_signals_.reset();
  summary.best_val_top1 = progress_.best_val_top1;
  summary.best_epoch = progress_.best_epoch;
  return summary;
}

void Trainer::submit_save(CommitPlan plan) {
  last_saved_step_ = progress_.global_step;
  last_save_time_ = Clock::now();
  if (!writes()) return;
  const std::string what = fmt::format("the checkpoint of global step {} in {}", progress_.global_step, output_);
  saver_->submit(encode_checkpoint(snapshot()), std::move(plan), what);
}

void Trainer::save_mid_epoch(const EpochSoFar& mine) {
  progress_.ranks = {mine};
  if (dist_) {
    // Every rank's sums, so that a job of the same size resumes each rank with its own (the
    // epoch's logged totals are then bit-identical); one slot per rank, summed.
    const int world = dist_->group().world_size;
    std::vector<double> slots(static_cast<size_t>(world) * 5, 0.0);
    double* row = slots.data() + static_cast<size_t>(dist_->group().rank) * 5;
    row[0] = mine.totals.loss_sum;
    row[1] = static_cast<double>(mine.totals.top1);
    row[2] = static_cast<double>(mine.totals.top5);
    row[3] = static_cast<double>(mine.totals.samples);
    row[4] = static_cast<double>(mine.skipped);
    Tensor all = Tensor::from_vector(slots, {world, 5});
    dist_->host_communicator().all_reduce(all);
    const std::vector<double> v = all.to_double_vector();
    progress_.ranks.assign(static_cast<size_t>(world), EpochSoFar{});
    for (int r = 0; r < world; ++r) {
      const double* x = v.data() + static_cast<size_t>(r) * 5;
      progress_.ranks[r].totals = {x[0], static_cast<int64_t>(x[1]), static_cast<int64_t>(x[2]), static_cast<int64_t>(x[3])};
      progress_.ranks[r].skipped = static_cast<int64_t>(x[4]);
    }
  }
  submit_save(CommitPlan{{"checkpoint.h5"}, {}});
}

// checkpoint.h5, best.h5 when the epoch improved, and the copies run.keep_last_epochs and
// run.keep_every_epochs retain (checkpoint-epochNNNN.h5), as one commit; copies of earlier epochs
// that fall out of retention go in the same commit (later epochs' copies, from before a resume
// from an older checkpoint, are left alone).
void Trainer::save_epoch_end(bool improved) {
  CommitPlan plan{{"checkpoint.h5"}, {}};
  if (improved) plan.targets.push_back("best.h5");
  const int64_t epoch = progress_.epoch, last = rc_.keep_last_epochs, every = rc_.keep_every_epochs;
  auto kept = [&](int64_t e) { return (last > 0 && e > epoch - last && e <= epoch) || (every > 0 && e % every == 0); };
  auto copy_name = [](int64_t e) { return fmt::format("checkpoint-epoch{:04}.h5", e); };
  if (kept(epoch)) plan.targets.push_back(copy_name(epoch));
  if (writes()) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(output_, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      int64_t e = 0;
      char tail = 0;
      if (std::sscanf(name.c_str(), "checkpoint-epoch%ld.h%c", &e, &tail) == 2 && name == copy_name(e) && e < epoch &&
          !kept(e))
        plan.remove.push_back(name);
    }
  }
  submit_save(std::move(plan));
}

}  // namespace dp::app
