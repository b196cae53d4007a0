// Samples the loader skipped (data.bad_samples = "skip"), made visible: a progress-line note, a
// JSON record for metrics.jsonl, a summary line, and the data.max_skipped_fraction limit.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/loader.h"

namespace dp::app {

// "3 skipped (a.jpg: not a JPEG; b.jpg: truncated; ...)"; "" when nothing was skipped.
std::string describe_skips(const data::SkipReport& report);

// {"count": N, "first": [{"index", "source", "reason"}, ...]}
nlohmann::json skips_json(const data::SkipReport& report);

// Throws dp::Error when more than `max_fraction` of the epoch's `samples` (seen + skipped) were
// skipped, naming the first files and the config key.
void check_skipped_fraction(const data::SkipReport& report, int64_t samples, double max_fraction, int64_t epoch);

}  // namespace dp::app
