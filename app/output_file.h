// A tool's output file written whole or not at all: the bytes go to a temporary file in the same
// folder, which is renamed over `path`, so a failed or interrupted write never leaves a truncated
// report or relabel file (nor destroys an earlier one).
#pragma once
#include <string>

namespace dp::app {

// Throws dp::Error naming `path` when the folder is not writable or the disk is full.
void write_output_file(const std::string& path, const std::string& bytes);

}  // namespace dp::app
