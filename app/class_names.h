// Class names for reports (dp-eval, dp-inspect, the per-sample export, the report): the class
// folder names of image folders (and the CIFAR-10 JPEG export), a dp-pack folder's classes.txt,
// CIFAR-10's names, CIFAR-100's fine_label_names.txt when the dataset folder has it; otherwise the
// label numbers.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace dp::app {

std::vector<std::string> class_names(const std::string& kind, const std::string& path, const data::Dataset& split);

}  // namespace dp::app
