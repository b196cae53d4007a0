// The GPU kit's stand-in for app/report.cpp: the kit leaves out libxml2 (app/inspect/meson.build),
// so its dp-inspect says where to make the report instead.
#include "app/report.h"

#include "app/checkpoint_schema.h"
#include "engine/error.h"

namespace dp::app {

std::string render_report(const ReportInputs& inputs, const ReportOptions&) {
  DP_THROW("this dp-inspect was built for the GPU kit, which leaves out the HTML report",
           "copy " + inputs.checkpoint->path + " (and its run folder's metrics.jsonl) to a machine with a full build "
           "and run dp-inspect --report there");
}

std::vector<EpochMetrics> read_epoch_metrics(const std::string&, int64_t) { return {}; }

}  // namespace dp::app
