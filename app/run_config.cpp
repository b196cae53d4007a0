#include "app/run_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <regex>
#include <sstream>

#include "engine/error.h"

namespace dp::app {

namespace {

train::DataParamConfig data_param_config(const Config& c) {
  train::DataParamConfig d;
  d.learn_class_parameters = c.get_bool("data_parameters.learn_class_parameters");
  d.learn_inst_parameters = c.get_bool("data_parameters.learn_inst_parameters");
  d.init_class_param = c.get_float("data_parameters.init_class_param");
  d.init_inst_param = c.get_float("data_parameters.init_inst_param");
  d.lr_class_param = c.get_float("data_parameters.lr_class_param");
  d.lr_inst_param = c.get_float("data_parameters.lr_inst_param");
  d.wd_class_param = c.get_float("data_parameters.wd_class_param");
  d.wd_inst_param = c.get_float("data_parameters.wd_inst_param");
  d.skip_clamp_data_param = c.get_bool("data_parameters.skip_clamp_data_param");
  return d;
}

// run.memory_format "auto": channels-last where it pays (bf16 on CUDA: cuDNN's tensor-core
// kernels are NHWC-native), contiguous elsewhere (the CPU runs channels-last through NCHW kernels).
MemoryFormat memory_format(const std::string& setting, const std::string& precision, Device device) {
  if (setting == "channels_last") return MemoryFormat::ChannelsLast;
  if (setting == "contiguous") return MemoryFormat::Contiguous;
  return device.is_cuda() && precision == "bf16" ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

// run.checkpoint_every: "off", "N steps" or "N min" (also "N step", "N minutes").
void parse_checkpoint_every(const std::string& text, RunConfig& r) {
  static const std::regex pattern(R"(^\s*(?:(off|0)|(\d+)\s*steps?|(\d+(?:\.\d*)?)\s*(?:min|mins|minutes?))\s*$)");
  std::smatch m;
  DP_CHECK(std::regex_match(text, m, pattern),
           fmt::format("config: run.checkpoint_every = \"{}\" is neither \"N steps\", \"N min\" nor \"off\"", text),
           "e.g. run.checkpoint_every = \"2000 steps\" or \"30 min\"; checkpoints at epoch ends are always written");
  if (m[2].matched) r.checkpoint_every_steps = std::stoll(m[2].str());
  if (m[3].matched) r.checkpoint_every_minutes = std::stod(m[3].str());
  DP_CHECK(r.checkpoint_every_steps >= 0 && r.checkpoint_every_minutes >= 0.0,
           fmt::format("config: run.checkpoint_every = \"{}\" must not be negative", text), "use \"off\" for none");
}

const std::vector<std::pair<std::string, int>>& known_signals() {
  static const std::vector<std::pair<std::string, int>> signals = {
      {"TERM", SIGTERM}, {"INT", SIGINT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
      {"QUIT", SIGQUIT}, {"XCPU", SIGXCPU}};
  return signals;
}

}  // namespace

std::vector<int> parse_stop_signals(const std::string& list) {
  std::vector<int> out;
  std::stringstream items(list);
  for (std::string item; std::getline(items, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    std::string name = item;
    for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (name.rfind("SIG", 0) == 0) name = name.substr(3);
    int number = 0;
    for (const auto& [known, n] : known_signals())
      if (known == name) number = n;
    std::string names;
    for (const auto& [known, n] : known_signals()) names += (names.empty() ? "" : ", ") + known;
    DP_CHECK(number != 0, fmt::format("config: run.stop_signals names '{}', which is not a signal dp-train can stop on", item),
             "use some of " + names + " (e.g. \"TERM,INT,USR1\"), or \"\" for none");
    if (std::find(out.begin(), out.end(), number) == out.end()) out.push_back(number);
  }
  return out;
}

std::string signal_name(int signal) {
  for (const auto& [name, n] : known_signals())
    if (n == signal) return "SIG" + name;
  return fmt::format("signal {}", signal);
}

RunConfig make_run_config(const Config& c) {
  RunConfig r;
  r.arch = c.get_string("model.arch");
  r.init_from = c.get_string("model.init_from");
  r.batch_size = c.get_int("optim.batch_size");
  r.sgd.lr = c.get_float("optim.lr");
  r.sgd.momentum = c.get_float("optim.momentum");
  r.sgd.weight_decay = c.get_float("optim.weight_decay");
  r.sgd.nesterov = c.get_bool("optim.nesterov");
  r.schedule.kind = c.get_string("optim.schedule");
  r.schedule.lr = r.sgd.lr;
  for (int64_t m : c.get_int_list("optim.milestones")) r.schedule.milestones.push_back(static_cast<int>(m));
  r.schedule.gamma = c.get_float("optim.gamma");
  r.schedule.warmup_epochs = c.get_int("optim.warmup_epochs");
  r.bad_samples = c.get_string("data.bad_samples") == "skip" ? data::BadSamplePolicy::kSkip
                                                              : data::BadSamplePolicy::kFail;
  r.max_skipped_fraction = c.get_float("data.max_skipped_fraction");
  r.data_params = data_param_config(c);
  r.epochs = c.get_int("run.epochs");
  r.schedule.epochs = r.epochs;
  r.stop_epoch = c.get_int("run.stop_epoch");
  r.seed = static_cast<uint64_t>(c.get_int("run.seed"));
  r.device = parse_device(c.get_string("run.device"));
  r.precision = c.get_string("run.precision");
  r.precision_given = c.was_set("run.precision");
  DP_CHECK(r.precision != "bf16" || r.device.is_cuda(), "run.precision = \"bf16\" needs run.device = \"cuda\"",
           "use \"fp32\" on the CPU");
  r.autocast = r.precision == "bf16" ? DType::BFloat16 : DType::Float32;
  r.memory_format = memory_format(c.get_string("run.memory_format"), r.precision, r.device);
  r.cudnn_benchmark = c.get_bool("run.cudnn_benchmark");
  const std::string graphs = c.get_string("run.cuda_graphs");
  DP_CHECK(graphs != "on" || r.device.is_cuda(), "run.cuda_graphs = \"on\" needs run.device = \"cuda\"",
           "use \"auto\" (graphs on CUDA, eager on the CPU) or \"off\"");
  r.cuda_graphs = r.device.is_cuda() && graphs != "off";
  r.workers = std::max<int64_t>(1, c.get_int("run.workers"));
  r.sync_batchnorm = c.get_bool("run.sync_batchnorm");
  r.dist_timeout_s = c.get_float("run.dist_timeout_s");
  r.allreduce_dtype = c.get_string("run.allreduce_dtype") == "bfloat16" ? DType::BFloat16 : DType::Float32;
  r.output = c.get_string("run.output");
  r.print_freq = c.get_int("run.print_freq");
  r.eval_batch_size = c.get_int("run.eval_batch_size");
  r.stop_signals = parse_stop_signals(c.get_string("run.stop_signals"));
  parse_checkpoint_every(c.get_string("run.checkpoint_every"), r);
  r.keep_last_epochs = c.get_int("run.keep_last_epochs");
  r.keep_every_epochs = c.get_int("run.keep_every_epochs");
  return r;
}

EvalSettings make_eval_settings(const Config& c, Device device) {
  EvalSettings e;
  const std::string precision = c.get_string("run.precision");
  e.autocast = precision == "bf16" && device.is_cuda() ? DType::BFloat16 : DType::Float32;
  e.memory_format = memory_format(c.get_string("run.memory_format"), precision, device);
  e.batch_size = c.get_int("run.eval_batch_size");
  e.workers = c.get_int("run.workers");
  return e;
}

std::unique_ptr<train::LrSchedule> make_schedule(const ScheduleConfig& s) {
  std::unique_ptr<train::LrSchedule> out;
  if (s.kind == "cifar") {
    out = train::cifar_reference_schedule(s.lr);
  } else if (s.kind == "imagenet") {
    out = train::imagenet_reference_schedule(s.lr);
  } else if (s.kind == "multistep") {
    out = std::make_unique<train::MultiStepLr>(s.lr, s.milestones, s.gamma);
  } else if (s.kind == "cosine") {
    out = std::make_unique<train::CosineLr>(s.lr, static_cast<double>(s.epochs));
  } else {
    out = std::make_unique<train::MultiStepLr>(s.lr, std::vector<int>{}, 1.0);
  }
  if (s.warmup_epochs > 0)
    out = std::make_unique<train::LinearWarmupLr>(std::move(out), static_cast<double>(s.warmup_epochs));
  return out;
}

}  // namespace dp::app
