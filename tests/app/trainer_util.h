// What the trainer tests share: a small fast run, quiet options, bitwise comparisons.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "app/checkpoint_schema.h"
#include "app/trainer.h"

namespace dp::fixture {

inline std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-run-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

// A small, fast run: tiny CNN, 12×12 synthetic images, 40% permutation noise, joint data parameters.
inline app::Config small_config(const std::string& output, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {
      "data.synthetic_train_size=384", "data.synthetic_test_size=64", "data.image_size=12",
      "data.noise=permute", "data.rand_fraction=0.4", "model.arch=tiny-cnn", "optim.batch_size=32",
      "optim.schedule=multistep", "optim.milestones=[1]", "data_parameters.learn_inst_parameters=true",
      "data_parameters.learn_class_parameters=true", "data_parameters.lr_inst_param=0.2",
      "data_parameters.wd_class_param=1e-4", "run.epochs=2", "run.workers=2", "run.output=" + output};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return app::Config::from_string("", "test.toml", sets);
}

inline app::TrainerOptions quiet() {
  app::TrainerOptions o;
  o.quiet = true;
  return o;
}

inline void expect_same_tensor_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  Tensor ha = a.to(Device::cpu()), hb = b.to(Device::cpu());
  EXPECT_EQ(std::memcmp(ha.raw_data(), hb.raw_data(), ha.nbytes()), 0) << what << " differs";
}

// Everything a resumed run must reproduce bit for bit: the model (parameters and BN buffers), SGD
// momentum, θ with their momentum and step counts, the σ history, the position and best score.
inline void expect_same_run_state(const app::Trainer& a, const app::Trainer& b) {
  const app::Checkpoint x = a.snapshot(), y = b.snapshot();
  for (const auto& [name, t] : x.model) expect_same_tensor_bits(t, y.model.at(name), "model " + name);
  ASSERT_EQ(x.momentum.size(), y.momentum.size());
  for (size_t i = 0; i < x.momentum.size(); ++i)
    expect_same_tensor_bits(x.momentum[i].second, y.momentum[i].second, "momentum " + x.momentum[i].first);
  for (const auto& [s, t, what] : {std::tuple{&x.theta_class, &y.theta_class, "θ_class"},
                                   std::tuple{&x.theta_inst, &y.theta_inst, "θ_inst"}}) {
    expect_same_tensor_bits(s->theta, t->theta, what);
    expect_same_tensor_bits(s->momentum, t->momentum, std::string(what) + " momentum");
    EXPECT_EQ(s->steps, t->steps) << what;
  }
  EXPECT_EQ(x.history.inst.counts, y.history.inst.counts);
  EXPECT_EQ(x.history.inst.sums, y.history.inst.sums);
  EXPECT_EQ(x.history.cls.counts, y.history.cls.counts);
  EXPECT_EQ(x.history.inst_mislabelled.counts, y.history.inst_mislabelled.counts);
  EXPECT_EQ(x.progress.epoch, y.progress.epoch);
  EXPECT_EQ(x.progress.global_step, y.progress.global_step);
  EXPECT_EQ(x.progress.best_val_top1, y.progress.best_val_top1);
  EXPECT_EQ(x.progress.best_epoch, y.progress.best_epoch);
}

}  // namespace dp::fixture
