#include "app/class_names.h"

#include <filesystem>
#include <fstream>

#include "data/image_folder.h"
#include "data/packed.h"

namespace dp::app {

std::vector<std::string> class_names(const std::string& kind, const std::string& path, const data::Dataset& split) {
  const auto classes = static_cast<size_t>(split.num_classes());
  std::vector<std::string> names;
  if (const auto* folder = dynamic_cast<const data::ImageFolderDataset*>(&split)) names = folder->classes();
  else if (const auto* packed = dynamic_cast<const data::PackedDataset*>(&split)) names = packed->classes();
  else if (kind == "cifar10" && classes == data::cifar10_class_names().size()) names = data::cifar10_class_names();
  else if (kind == "cifar100")
    for (const char* sub : {"", "cifar-100-binary"}) {
      std::ifstream in(std::filesystem::path(path) / sub / "fine_label_names.txt");
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) names.push_back(line);
      if (names.size() == classes) break;
      names.clear();
    }
  if (names.size() != classes) {
    names.clear();
    for (size_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
  }
  return names;
}

}  // namespace dp::app
