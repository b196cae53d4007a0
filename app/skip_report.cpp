#include "app/skip_report.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace dp::app {

namespace {

std::string list_first(const data::SkipReport& report) {
  // A data-parallel job's count is the ranks' sum, its examples this rank's own: there may be none.
  if (report.first.empty()) return "all in other ranks' shares, which do not print them; dp-train run alone lists them";
  std::string out;
  for (const data::SkippedSample& s : report.first) {
    if (!out.empty()) out += "; ";
    // The first line of the reason is enough here: the hint part repeats for every sample.
    out += s.source + ": " + s.reason.substr(0, s.reason.find('\n'));
  }
  if (report.count > static_cast<int64_t>(report.first.size())) out += "; ...";
  return out;
}

}  // namespace

std::string describe_skips(const data::SkipReport& report) {
  if (report.count == 0) return "";
  return fmt::format("{} skipped ({})", report.count, list_first(report));
}

nlohmann::json skips_json(const data::SkipReport& report) {
  nlohmann::json first = nlohmann::json::array();
  for (const data::SkippedSample& s : report.first)
    first.push_back({{"index", s.index}, {"source", s.source}, {"reason", s.reason}});
  return {{"count", report.count}, {"first", first}};
}

void check_skipped_fraction(const data::SkipReport& report, int64_t samples, double max_fraction, int64_t epoch) {
  if (report.count == 0 || samples <= 0) return;
  const double fraction = static_cast<double>(report.count) / static_cast<double>(samples);
  DP_CHECK(fraction <= max_fraction,
           fmt::format("epoch {} skipped {} of {} training samples ({:.2f}%, more than data.max_skipped_fraction = "
                       "{}): {}",
                       epoch, report.count, samples, 100.0 * fraction, max_fraction, list_first(report)),
           "repair or remove the unreadable files, or raise data.max_skipped_fraction if losing them is acceptable");
}

}  // namespace dp::app
