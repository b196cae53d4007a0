// The configuration reference, generated from the schema (app/config_schema.cpp) and the dataset
// registry: what `dp-train --help-config` prints and docs/config.md holds (a test keeps the two
// equal), so the keys are described in one place.
#pragma once
#include <string>

namespace dp::app {

// Markdown: one table per section (key, type, default, allowed values or range, description),
// and the dataset kinds with what each reads.
std::string config_reference();

}  // namespace dp::app
