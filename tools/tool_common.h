// What every tool shares: --version (commit and build options, from the generated version.h) and
// one message for a CUDA device that is not there.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "engine/device.h"

namespace dp::tools {

// The text --version prints: tool name, commit (git describe), build type, CUDA on/off, GPU architectures.
std::string version_text(const std::string& tool);

// Adds --version to `app`: prints version_text and exits 0.
void add_version_flag(CLI::App& app, const std::string& tool);

// parse_device, refusing a CUDA device on a machine or build without one with one clear message.
Device checked_device(const std::string& device);

}  // namespace dp::tools
