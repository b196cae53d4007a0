// Nets by name, for configs and tools: "resnet18", "resnet34", "wrn-28-10", "wrn-16-4",
// any "wrn-D-K" (D = 6n+4), "tiny-cnn".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layers/module.h"

namespace dp::nets {

// Builds the named net with `num_classes` outputs, initialised deterministically from `seed`.
// Throws a dp::Error listing the known names when `name` is not one of them.
layers::ModulePtr make_net(const std::string& name, int64_t num_classes, uint64_t seed = 0);

// The fixed names (wrn-D-K accepts any valid D and K beyond those listed).
std::vector<std::string> known_net_names();

// Parses "wrn-D-K" (also "wrn_D_K", "wideresnet-D-K"); false when `name` is not of that form.
bool parse_wrn_name(const std::string& name, int64_t& depth, int64_t& width);

}  // namespace dp::nets
