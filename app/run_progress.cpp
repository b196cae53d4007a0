#include "app/run_progress.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "app/skip_report.h"

namespace dp::app {

namespace {

// One row per rank: loss·batch, top-1, top-5, samples, skipped (float64: counts stay exact up to 2^53).
const std::string kEpochSoFar = "progress/epoch_so_far";
constexpr int64_t kColumns = 5;

}  // namespace

EpochSoFar RunProgress::resumed_sums(int rank, int world_size) const {
  if (static_cast<int>(ranks.size()) == world_size) return ranks[static_cast<size_t>(rank)];
  EpochSoFar all;
  if (rank != 0) return all;
  for (const EpochSoFar& r : ranks) {
    all.totals.loss_sum += r.totals.loss_sum;
    all.totals.top1 += r.totals.top1;
    all.totals.top5 += r.totals.top5;
    all.totals.samples += r.totals.samples;
    all.skipped += r.skipped;
  }
  return all;
}

void RunProgress::save(StateWriter& out) const {
  out.integer("epoch", epoch);
  out.integer("global_step", global_step);
  out.integer("seed", seed);
  out.real("best_val_top1", best_val_top1);
  out.integer("best_epoch", best_epoch);
  if (!mid_epoch()) return;
  out.integer("epoch_step", epoch_step);
  out.real("epoch_seconds", epoch_seconds);
  std::vector<double> rows;
  for (const EpochSoFar& r : ranks)
    rows.insert(rows.end(), {r.totals.loss_sum, static_cast<double>(r.totals.top1), static_cast<double>(r.totals.top5),
                             static_cast<double>(r.totals.samples), static_cast<double>(r.skipped)});
  out.tensor(kEpochSoFar, Tensor::from_vector(rows, {static_cast<int64_t>(ranks.size()), kColumns}));
  if (!skipped_first.first.empty()) out.text("epoch_skipped_first", skips_json(skipped_first)["first"].dump());
}

void RunProgress::load(StateReader& in) {
  constexpr int64_t kMax = INT64_MAX;
  epoch = in.integer_in("epoch", 0, kMax, std::nullopt);
  global_step = in.integer_in("global_step", 0, kMax, std::nullopt);
  seed = in.integer_in("seed", 0, kMax, 0);
  best_val_top1 = in.real("best_val_top1").value_or(-1.0);
  best_epoch = in.integer_in("best_epoch", 0, epoch, 0);
  epoch_step = in.integer_in("epoch_step", 0, global_step, 0);
  epoch_seconds = in.real("epoch_seconds").value_or(0.0);
  ranks.clear();
  skipped_first = {};
  const Tensor* rows = in.take(kEpochSoFar);
  if (!mid_epoch()) {
    if (rows != nullptr) in.invalid(fmt::format("dataset /{} belongs to a mid-epoch checkpoint, but epoch_step is 0", kEpochSoFar));
    return;
  }
  if (rows == nullptr) in.invalid(fmt::format("a mid-epoch checkpoint (epoch_step = {}) without /{}", epoch_step, kEpochSoFar));
  in.expect_dtype(kEpochSoFar, *rows, DType::Float64);
  if (rows->dim() != 2 || rows->size(0) < 1 || rows->size(1) != kColumns)
    in.invalid(fmt::format("dataset /{} must be [ranks, {}], found {}", kEpochSoFar, kColumns, shape_str(rows->shape())));
  const std::vector<double> v = rows->to_double_vector();
  for (int64_t r = 0; r < rows->size(0); ++r) {
    const double* row = v.data() + r * kColumns;
    for (int64_t c = 1; c < kColumns; ++c)
      if (!(row[c] >= 0 && row[c] <= 9.0e15) || row[c] != static_cast<double>(static_cast<int64_t>(row[c])))
        in.invalid(fmt::format("dataset /{}[{}, {}] = {} is not a count", kEpochSoFar, r, c, row[c]));
    EpochSoFar e;
    e.totals.loss_sum = row[0];
    e.totals.top1 = static_cast<int64_t>(row[1]);
    e.totals.top5 = static_cast<int64_t>(row[2]);
    e.totals.samples = static_cast<int64_t>(row[3]);
    e.skipped = static_cast<int64_t>(row[4]);
    ranks.push_back(e);
  }
  if (std::optional<std::string> first = in.text("epoch_skipped_first")) {
    try {
      for (const auto& s : nlohmann::json::parse(*first))
        skipped_first.first.push_back({s.at("index").get<int64_t>(), s.at("source").get<std::string>(),
                                       s.at("reason").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
      in.invalid(fmt::format("attribute 'epoch_skipped_first' is not the list of skipped samples dp-train writes ({})",
                             e.what()));
    }
    skipped_first.count = static_cast<int64_t>(skipped_first.first.size());
  }
}

}  // namespace dp::app
