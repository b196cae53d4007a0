// The schema of dp-train's TOML configuration. Names in [data_parameters] are the reference
// implementation's command-line flags, so its users recognise them.
#include "app/config.h"
#include "data/registry.h"

namespace dp::app {

const std::vector<ConfigKey>& config_schema() {
  using T = ConfigType;
  static const std::vector<ConfigKey> schema = {
      // ---- data ----
      {"data.dataset", T::String, std::string("synthetic"), 0, 0, data::dataset_kind_names(),
       "dataset kind (the kinds and what each reads: data/registry.h, listed after this table)"},
      {"data.path", T::String, std::string(""), 0, 0, {}, "dataset folder (unused for synthetic)"},
      {"data.num_classes", T::Int, int64_t{0}, 0, 100000, {}, "0: from the dataset"},
      {"data.synthetic_train_size", T::Int, int64_t{2048}, 1, 10000000, {}, "synthetic: training samples"},
      {"data.synthetic_test_size", T::Int, int64_t{512}, 1, 10000000, {}, "synthetic: validation samples"},
      {"data.synthetic_noise", T::Float, 0.25, 0.0, 10.0, {},
       "synthetic: std of the per-pixel noise relative to 0..255 (higher: a harder task)"},
      {"data.image_size", T::Int, int64_t{32}, 8, 1024, {}, "training crop size"},
      {"data.noise", T::String, std::string("none"), 0, 0,
       {"none", "permute", "symmetric", "symmetric-other", "file"},
       "label noise on the training split: the reference's image permutation, uniform flips, or a label file"},
      {"data.rand_fraction", T::Float, 0.0, 0.0, 1.0, {}, "fraction of corrupted training samples"},
      {"data.noise_file", T::String, std::string(""), 0, 0, {}, "CSV with per-sample labels"},
      {"data.noise_column", T::String, std::string(""), 0, 0, {}, "column of noise_file, e.g. worse_label"},
      {"data.noise_index_column", T::String, std::string(""), 0, 0, {},
       "column of noise_file giving each row's dataset index, e.g. orig_index (empty: row order)"},
      {"data.relabel_file", T::String, std::string(""), 0, 0, {},
       "dp-inspect --relabel CSV applied after data.noise: relabel and drop rows as its action column says"},
      {"data.index_order_csv", T::String, std::string(""), 0, 0, {},
       "cifar10-jpeg: CSV (orig_index, path) restoring CIFAR's original training order"},
      {"data.bad_samples", T::String, std::string("fail"), 0, 0, {"fail", "skip"},
       "fail: stop at an unreadable sample; skip: drop it, report it, and go on"},
      {"data.max_skipped_fraction", T::Float, 0.01, 0.0, 1.0, {},
       "skip: stop the run when an epoch skips more than this fraction of its training samples"},
      // ---- model ----
      {"model.arch", T::String, std::string("wrn-28-10"), 0, 0, {}, "resnet18, resnet34, wrn-D-K, tiny-cnn"},
      {"model.init_from", T::String, std::string(""), 0, 0, {}, "safetensors file of initial weights"},
      // ---- optimiser and schedule ----
      {"optim.batch_size", T::Int, int64_t{128}, 1, 1 << 20, {}, "the global batch (split over the ranks of a data-parallel run)"},
      {"optim.lr", T::Float, 0.1, 0.0, 100.0, {}, "the model's learning rate before the schedule"},
      {"optim.momentum", T::Float, 0.9, 0.0, 1.0, {}, "SGD momentum (PyTorch's, dampening 0)"},
      {"optim.nesterov", T::Bool, false, 0, 0, {}, "Nesterov momentum"},
      {"optim.weight_decay", T::Float, 5e-4, 0.0, 1.0, {}, "coupled, on all model parameters"},
      {"optim.schedule", T::String, std::string("cifar"), 0, 0,
       {"cifar", "imagenet", "multistep", "cosine", "constant"},
       "cifar: x0.1 at epochs 80, 100, 160 (the reference's); imagenet: x0.1 every 30 epochs; multistep: x gamma at "
       "milestones; cosine: over run.epochs"},
      {"optim.milestones", T::IntList, std::vector<int64_t>{80, 100, 160}, 0, 1e9, {}, "epochs (multistep)"},
      {"optim.gamma", T::Float, 0.1, 0.0, 1.0, {}, "multistep: the factor at each milestone"},
      {"optim.warmup_epochs", T::Int, int64_t{0}, 0, 1000, {}, "linear warm-up"},
      // ---- data parameters (the reference's names) ----
      {"data_parameters.learn_class_parameters", T::Bool, false, 0, 0, {}, "learn a temperature per class"},
      {"data_parameters.learn_inst_parameters", T::Bool, false, 0, 0, {}, "learn a temperature per training sample"},
      {"data_parameters.init_class_param", T::Float, 1.0, 1e-12, 1e6, {}, "initial σ (class)"},
      {"data_parameters.init_inst_param", T::Float, 1.0, 1e-12, 1e6, {}, "initial σ (instance)"},
      {"data_parameters.lr_class_param", T::Float, 0.1, 0.0, 1e4, {}, "SparseSGD learning rate of the class temperatures"},
      {"data_parameters.lr_inst_param", T::Float, 0.1, 0.0, 1e4, {}, "SparseSGD learning rate of the sample temperatures"},
      {"data_parameters.wd_class_param", T::Float, 0.0, 0.0, 1e4, {}, "weight decay on log σ (class), in the loss"},
      {"data_parameters.wd_inst_param", T::Float, 0.0, 0.0, 1e4, {}, "weight decay on log σ (sample), in the loss"},
      {"data_parameters.skip_clamp_data_param", T::Bool, false, 0, 0, {}, "do not clamp σ to [1/20, 20] after each step"},
      // ---- run ----
      {"run.epochs", T::Int, int64_t{120}, 1, 100000, {}, "the schedule's length"},
      {"run.stop_epoch", T::Int, int64_t{0}, 0, 100000, {}, "0: run all epochs"},
      {"run.seed", T::Int, int64_t{1}, 0, 9.2e18, {}, "initialisation, label noise, augmentation and shuffling"},
      {"run.device", T::String, std::string("cpu"), 0, 0, {}, "cpu, cuda, cuda:N"},
      {"run.precision", T::String, std::string("tf32"), 0, 0, {"fp32", "tf32", "bf16"},
       "tf32: float32 with TF32 tensor cores on CUDA (PyTorch's default); fp32: strict"},
      {"run.memory_format", T::String, std::string("auto"), 0, 0, {"auto", "contiguous", "channels_last"},
       "activation layout; auto: channels_last with bf16 on CUDA (cuDNN's NHWC tensor-core kernels)"},
      {"run.cudnn_benchmark", T::Bool, true, 0, 0, {},
       "time cuDNN's convolution algorithms once per shape (PyTorch's cudnn.benchmark, as the reference sets)"},
      {"run.cuda_graphs", T::String, std::string("auto"), 0, 0, {"auto", "on", "off"},
       "capture the training step once per batch shape and replay it as a CUDA graph; auto: on for CUDA"},
      {"run.workers", T::Int, int64_t{2}, 0, 256, {}, "loader threads"},
      {"run.output", T::String, std::string("runs/default"), 0, 0, {}, "output folder"},
      {"run.print_freq", T::Int, int64_t{10}, 1, 1000000, {}, "iterations between log lines"},
      {"run.eval_batch_size", T::Int, int64_t{100}, 1, 1 << 20, {}, "batch size of the validation pass"},
      // ---- long runs: stops, checkpoints, retention (docs/long-runs.md) ----
      {"run.stop_signals", T::String, std::string("TERM,INT,USR1"), 0, 0, {},
       "signals that stop the run at the next step boundary with a checkpoint (exit code 75; a second signal "
       "ends it at once), comma-separated; \"\": none"},
      {"run.checkpoint_every", T::String, std::string("30 min"), 0, 0, {},
       "mid-epoch checkpoints besides the one at each epoch's end: \"N steps\", \"N min\" or \"off\""},
      {"run.keep_last_epochs", T::Int, int64_t{0}, 0, 1000000, {},
       "also keep the last K epochs' checkpoints as checkpoint-epochNNNN.h5"},
      {"run.keep_every_epochs", T::Int, int64_t{0}, 0, 1000000, {},
       "also keep every N-th epoch's checkpoint as checkpoint-epochNNNN.h5 for good"},
      // ---- data-parallel runs (mpirun / srun; dist/, app/distributed.h) ----
      {"run.sync_batchnorm", T::Bool, false, 0, 0, {},
       "BN statistics over the global batch (all ranks); false: per-rank statistics, as PyTorch DDP"},
      {"run.dist_timeout_s", T::Float, 300.0, 1.0, 1e6, {},
       "a collective still waiting after this long ends the job, naming the rank"},
      {"run.allreduce_dtype", T::String, std::string("float32"), 0, 0, {"float32", "bfloat16"},
       "type the gradients are all-reduced in; bfloat16 halves the bytes (PyTorch DDP's bf16 compress hook)"},
  };
  return schema;
}

}  // namespace dp::app
