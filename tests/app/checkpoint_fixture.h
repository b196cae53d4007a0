// A small valid checkpoint (tiny-cnn, 10 classes, 6 training samples, both θ, momentum, a σ
// history and the per-sample loss record) for tests that tamper with one part of it.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "nets/registry.h"
#include "app/checkpoint_schema.h"

namespace dp::fixture {

inline std::string temp_dir(const char* stem) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(stem) + "-XXXXXX")).string();
  return mkdtemp(tmpl.data());
}

inline app::Checkpoint small_checkpoint() {
  app::Checkpoint c;
  c.arch = "tiny-cnn";
  c.num_classes = 10;
  c.progress.epoch = 2;
  c.progress.global_step = 7;
  c.progress.seed = 3;
  c.progress.best_val_top1 = 41.5;
  c.config = "[model]\narch = \"tiny-cnn\"\n";
  layers::ModulePtr net = nets::make_net(c.arch, c.num_classes, 11);
  c.model = net->state_dict().clone();
  for (const auto& [name, p] : net->named_parameters()) c.momentum.emplace_back(name, p.clone());
  data::NoiseMap n;
  n.protocol = "symmetric";
  n.label = {0, 1, 2, 3, 9, 5};
  n.original_label = {0, 1, 2, 3, 4, 5};
  n.is_corrupted = {0, 0, 0, 0, 1, 0};
  n.image_source = {0, 1, 2, 3, 4, 5};
  c.noise = n;
  c.theta_class = {Tensor::from_vector(std::vector<float>(10, 0.25f), {10}),
                   Tensor::from_vector(std::vector<float>(10, 0.01f), {10}), 5};
  c.theta_inst = {Tensor::from_vector(std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, {6}),
                  Tensor::from_vector(std::vector<float>(6, 0.02f), {6}), 6};
  c.history = train::SigmaRecord({0.1, 1.0, 10.0});
  c.history.inst.counts = {{2, 4}, {1, 5}};
  c.history.cls.counts = {{10, 0}, {9, 1}};
  c.sample_loss.sum = Tensor::from_vector(std::vector<float>{0.5f, 0.7f, 0.4f, 0.9f, 4.5f, 0.6f}, {6});
  c.sample_loss.count = Tensor::from_vector(std::vector<float>(6, 2.f), {6});
  return c;
}

// The same, written in the middle of epoch 3 by a job of 2 ranks (the run-progress part a
// mid-epoch checkpoint adds: position, each rank's sums so far, the first skipped sample).
inline app::Checkpoint mid_epoch_checkpoint() {
  app::Checkpoint c = small_checkpoint();
  c.progress.epoch_step = 3;
  c.progress.global_step = 10;
  c.progress.epoch_seconds = 1.25;
  c.progress.ranks = {{{7.5, 2, 5, 12}, 1}, {{8.25, 3, 6, 12}, 0}};
  c.progress.skipped_first.add({4, "sample 4", "unreadable"});
  return c;
}

}  // namespace dp::fixture
