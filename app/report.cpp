#include "app/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/checkpoint_schema.h"
#include "app/config.h"
#include "app/inspect/html.h"
#include "app/inspect/svg_plot.h"
#include "app/inspect/thumbnail.h"
#include "train/sigma_histogram.h"

namespace dp::app {

namespace {

using inspect::HtmlNode;

const char* kCss = R"css(
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #666; } .note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; margin: 0.6em 0; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { font-weight: 600; background: #eef7ee; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } svg.plot { background: #fff; border: 1px solid #eee; }
svg.plot text { font: 11px system-ui, sans-serif; fill: #333; } svg.plot .plot-title { font-weight: 600; font-size: 12px; }
svg.plot .grid { stroke: #eee; } svg.plot .frame { fill: none; stroke: #999; }
.figure img { max-width: min(100%, 820px); border: 1px solid #eee; }
.grid-samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(118px, 1fr)); gap: 8px; }
.sample { border: 1px solid #ddd; border-radius: 4px; padding: 4px; font-size: 11.5px; background: #fafafa; }
.sample.wrong { border-color: #d62728; background: #fff2f2; }
.sample img, .sample .placeholder { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated;
  display: block; margin: 0 auto 3px auto; background: #eee; }
.sample .placeholder { display: flex; align-items: center; justify-content: center; text-align: center; color: #777;
  font-size: 10px; overflow: hidden; }
.sample .labels { font-weight: 600; } .sample .bad { color: #d62728; font-weight: 600; } .sample .path { color: #888; word-break: break-all; }
)css";

const char* kColours[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd"};

inspect::PlotSeries series(const std::string& name, const std::string& colour) {
  inspect::PlotSeries s;
  s.name = name;
  s.colour = colour;
  return s;
}

inspect::LinePlot plot(const std::string& title, const std::string& x_label, const std::string& y_label) {
  inspect::LinePlot p;
  p.title = title;
  p.x_label = x_label;
  p.y_label = y_label;
  return p;
}

std::string pct(double v) { return std::isfinite(v) ? fmt::format("{:.2f}%", v) : "–"; }
std::string fixed(double v, int d = 4) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, d) : "–"; }

void note(HtmlNode parent, const std::string& text) { parent.add("p", {{"class", "note"}}, text); }

void row(HtmlNode table, const std::vector<std::string>& cells, bool header = false,
         const std::vector<bool>& numeric = {}) {
  HtmlNode tr = table.add("tr");
  for (size_t i = 0; i < cells.size(); ++i)
    tr.add(header ? "th" : "td", i < numeric.size() && numeric[i] ? inspect::Attributes{{"class", "num"}} : inspect::Attributes{},
           cells[i]);
}

struct Context {
  const ReportInputs& in;
  const ReportOptions& opt;
  const Checkpoint& c;
  const data::NoiseMap& noise;
  std::vector<uint8_t> wrong;  // label != original_label
  int64_t n_wrong = 0;
  bool known_noise = false;    // the run knows which labels are wrong
  std::string name(int64_t cls) const {
    return cls >= 0 && cls < static_cast<int64_t>(in.class_names.size()) ? in.class_names[cls] : std::to_string(cls);
  }
};

void run_section(HtmlNode body, const Context& x) {
  const Config& cfg = *x.in.config;
  body.add("h2", {}, "The run");
  HtmlNode t = body.add("table");
  auto kv = [&](const std::string& k, const std::string& v) { row(t, {k, v}); };
  kv("dataset", cfg.get_string("data.dataset") + (cfg.get_string("data.path").empty() ? "" : "  (" + cfg.get_string("data.path") + ")"));
  std::string noise = cfg.get_string("data.noise");
  if (noise == "permute" || noise.rfind("symmetric", 0) == 0) noise += fmt::format(", rand_fraction {:g}", cfg.get_float("data.rand_fraction"));
  if (noise == "file") noise += fmt::format(", {} of {}", cfg.get_string("data.noise_column"), cfg.get_string("data.noise_file"));
  if (!cfg.get_string("data.relabel_file").empty()) noise += ", then the relabel file " + cfg.get_string("data.relabel_file");
  kv("label noise", noise);
  kv("training samples", fmt::format("{} ({} with a wrong label as far as the run knows)", x.noise.size(), x.n_wrong));
  kv("model", cfg.get_string("model.arch"));
  kv("optimiser", fmt::format("SGD lr {:g}, batch {}, weight decay {:g}, schedule {}", cfg.get_float("optim.lr"),
                              cfg.get_int("optim.batch_size"), cfg.get_float("optim.weight_decay"),
                              cfg.get_string("optim.schedule")));
  std::string dp;
  if (cfg.get_bool("data_parameters.learn_class_parameters"))
    dp += fmt::format("class-level (init {:g}, lr {:g}, wd {:g}) ", cfg.get_float("data_parameters.init_class_param"),
                      cfg.get_float("data_parameters.lr_class_param"), cfg.get_float("data_parameters.wd_class_param"));
  if (cfg.get_bool("data_parameters.learn_inst_parameters"))
    dp += fmt::format("instance-level (init {:g}, lr {:g}, wd {:g})", cfg.get_float("data_parameters.init_inst_param"),
                      cfg.get_float("data_parameters.lr_inst_param"), cfg.get_float("data_parameters.wd_inst_param"));
  kv("data parameters", dp.empty() ? "none (a baseline)" : dp);
  kv("epochs", fmt::format("{} of {} (seed {})", x.c.progress.epoch, cfg.get_int("run.epochs"), x.c.progress.seed));

  const std::vector<EpochMetrics> m = read_epoch_metrics(x.in.metrics_jsonl, x.c.progress.epoch);
  if (x.c.progress.best_epoch > 0) {
    std::string best = fmt::format("{} at epoch {}", pct(x.c.progress.best_val_top1), x.c.progress.best_epoch);
    for (const EpochMetrics& e : m)
      if (e.epoch == x.c.progress.best_epoch) best += fmt::format(" (top-5 {})", pct(e.val_top5));
    kv("best validation top-1", best);
  }
  if (!m.empty() && m.back().epoch == x.c.progress.epoch)
    kv("final validation top-1 / top-5", fmt::format("{} / {} (epoch {})", pct(m.back().val_top1), pct(m.back().val_top5), x.c.progress.epoch));
  if (m.empty()) {
    note(body, "No per-epoch metrics: " + (x.in.metrics_jsonl.empty() ? std::string("no run folder given")
                                                                        : x.in.metrics_jsonl + " is missing or has no epoch lines") +
                   ". The curves need the run folder's metrics.jsonl beside the checkpoint.");
    return;
  }
  inspect::LinePlot loss = plot("loss per epoch", "epoch", "cross-entropy");
  inspect::LinePlot top1 = plot("top-1 per epoch", "epoch", "top-1 (%)");
  inspect::PlotSeries tl = series("train", "#1f77b4"), vl = series("validation", "#d62728");
  inspect::PlotSeries ta = tl, va = vl;
  for (const EpochMetrics& e : m) {
    const auto ep = static_cast<double>(e.epoch);
    tl.x.push_back(ep), tl.y.push_back(e.train_loss), vl.x.push_back(ep), vl.y.push_back(e.val_loss);
    ta.x.push_back(ep), ta.y.push_back(e.train_top1), va.x.push_back(ep), va.y.push_back(e.val_top1);
  }
  loss.series = {tl, vl};
  top1.series = {ta, va};
  loss.y_min = 0;
  HtmlNode plots = body.add("div", {{"class", "plots"}});
  inspect::add_line_plot(plots, loss);
  inspect::add_line_plot(plots, top1);
  body.add("p", {{"class", "meta"}},
           "Train: the running loss and top-1 of the epoch's steps against the labels trained on (with data "
           "parameters, the loss of the scaled logits); validation: plain cross-entropy on the test split.");
}

void sigma_section(HtmlNode body, const Context& x) {
  body.add("h2", {}, "σ over the epochs");
  if (x.in.sigma_figures_png.empty()) {
    note(body, x.c.theta_inst.defined() || x.c.theta_class.defined()
                   ? "This checkpoint has no σ history (/history/sigma_*): it was written before dp-train recorded one."
                   : "This run learnt no data parameters: there is no σ to show. Train with "
                     "data_parameters.learn_inst_parameters = true to see which samples the curriculum distrusts.");
    return;
  }
  for (size_t i = 0; i < x.in.sigma_figures_png.size(); ++i) {
    HtmlNode fig = body.add("figure", {{"class", "figure"}});
    fig.add("img", {{"src", inspect::data_uri("image/png", x.in.sigma_figures_png[i])},
                    {"alt", x.in.sigma_figure_titles[i]}});
    fig.add("figcaption", {}, x.in.sigma_figure_titles[i]);
  }
}

void detector_section(HtmlNode body, const Context& x, const std::vector<Detector>& detectors) {
  body.add("h2", {}, "σ beside other detectors of wrong labels");
  if (!x.known_noise) {
    note(body, "The run knows of no wrong label (data.noise = \"none\", or no label changed): there is nothing to score "
               "the detectors against. Runs with a known noise map (the reference's permutation, symmetric noise, a "
               "label file such as CIFAR-10N) get ROC-AUC, precision@k and precision-recall curves here.");
    return;
  }
  if (detectors.empty()) {
    note(body, "No detector has data: no instance parameters, no loss record, and no pass of the model over the "
               "training split.");
    return;
  }
  const int64_t n = x.noise.size();
  std::vector<int64_t> ks{100, 1000, x.n_wrong};
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  const std::vector<DetectorQuality> q = detector_quality(detectors, x.wrong, ks);
  size_t best = 0;
  for (size_t i = 1; i < q.size(); ++i)
    if (q[i].roc_auc > q[best].roc_auc) best = i;
  body.add("p", {}, fmt::format("Against the {} training samples whose label is wrong (label ≠ true class) among {}. "
                                "A detector ranks samples by suspicion; precision@k is the share of wrong labels among its k "
                                "most suspect, precision@{} is also its recall there.",
                                x.n_wrong, n, x.n_wrong));
  HtmlNode t = body.add("table");
  std::vector<std::string> head{"detector", "what it is", "ROC-AUC", "average precision"};
  for (int64_t k : ks)
    if (k <= n) head.push_back(fmt::format("precision@{}", k));
  row(t, head, true);
  for (size_t i = 0; i < q.size(); ++i) {
    std::vector<std::string> cells{q[i].name, detectors[i].description, fixed(q[i].roc_auc), fixed(q[i].average_precision)};
    std::vector<bool> numeric{false, false, true, true};
    for (const auto& [k, p] : q[i].precision_at) cells.push_back(fixed(p)), numeric.push_back(true);
    HtmlNode tr = t.add("tr", i == best ? inspect::Attributes{{"class", "best"}} : inspect::Attributes{});
    for (size_t j = 0; j < cells.size(); ++j) tr.add("td", numeric[j] ? inspect::Attributes{{"class", "num"}} : inspect::Attributes{}, cells[j]);
  }
  std::string verdict = fmt::format("Best by ROC-AUC: {} ({}).", q[best].name, fixed(q[best].roc_auc));
  if (q[best].key != "sigma" && detectors.front().key == "sigma")
    verdict += fmt::format(" σ is not the best detector in this run (ROC-AUC {} against {}).", fixed(q.front().roc_auc),
                           fixed(q[best].roc_auc));
  body.add("p", {}, verdict);
  inspect::LinePlot pr = plot("precision-recall of the wrong labels", "recall", "precision");
  pr.x_min = 0, pr.x_max = 1, pr.y_min = 0, pr.y_max = 1;
  pr.width = 520, pr.height = 340;
  for (size_t i = 0; i < q.size(); ++i) {
    inspect::PlotSeries s = series(q[i].name, kColours[i % 4]);
    for (const inspect::PrPoint& p : q[i].pr_curve) s.x.push_back(p.recall), s.y.push_back(p.precision);
    pr.series.push_back(std::move(s));
  }
  inspect::PlotSeries chance =
      series(fmt::format("chance ({:.3f})", static_cast<double>(x.n_wrong) / static_cast<double>(n)), "#999");
  chance.dashed = true;
  chance.x = {0, 1};
  chance.y = {static_cast<double>(x.n_wrong) / static_cast<double>(n), static_cast<double>(x.n_wrong) / static_cast<double>(n)};
  pr.series.push_back(chance);
  inspect::add_line_plot(body.add("div", {{"class", "plots"}}), pr);
}

void sample_card(HtmlNode grid, const Context& x, const SampleScores& s, const Detector& d, int64_t i, int64_t rank,
                 bool synthetic) {
  const auto u = static_cast<size_t>(i);
  const bool is_wrong = x.known_noise && x.wrong[u];
  HtmlNode card = grid.add("div", {{"class", is_wrong ? "sample wrong" : "sample"}});
  const std::string source = x.in.train ? x.in.train->source(i) : "";
  if (synthetic) {
    card.add("div", {{"class", "placeholder"}}, "built-in synthetic data: no image");
  } else if (x.in.train == nullptr) {
    card.add("div", {{"class", "placeholder"}, {"title", x.in.data_problem}}, "dataset not available");
  } else {
    const inspect::Thumbnail t = inspect::make_thumbnail(*x.in.train, i, x.opt.thumbnail_px);
    if (t.jpeg.empty())
      card.add("div", {{"class", "placeholder"}, {"title", t.error}}, "image not readable");
    else
      card.add("img", {{"src", inspect::data_uri("image/jpeg", t.jpeg)},
                       {"width", std::to_string(t.width)},
                       {"height", std::to_string(t.height)},
                       {"alt", fmt::format("sample {}", i)},
                       {"title", source}});
  }
  card.add("div", {}, fmt::format("#{}  ·  sample {}", rank, i));
  if (!s.sigma.empty()) card.add("div", {}, fmt::format("σ {:.4f}", s.sigma[u]));
  if (d.key != "sigma") card.add("div", {}, fmt::format("{} {:.4f}", d.name, d.suspicion[u]));
  HtmlNode labels = card.add("div", {{"class", "labels"}});
  labels.text(x.name(x.noise.label[u]));
  if (s.has_pass()) labels.text(" → " + x.name(s.prediction[u]));
  if (is_wrong) card.add("div", {{"class", "bad"}}, "wrong label (true: " + x.name(x.noise.original_label[u]) + ")");
  // The end of a long path says most (class folder, file name); the whole one is the tooltip.
  if (!source.empty() && !synthetic)
    card.add("div", {{"class", "path"}, {"title", source}},
             source.size() <= 48 ? source : "…" + source.substr(source.size() - 47));  // a cut character: U+FFFD
}

void grids_section(HtmlNode body, const Context& x, const SampleScores& s, const Detector& d, bool synthetic) {
  const std::vector<int64_t> order = inspect::rank_descending(d.suspicion);
  const auto n = static_cast<int64_t>(order.size());
  const int64_t k = std::min(x.opt.samples, n);
  body.add("h2", {}, fmt::format("The {} most distrusted training samples", k));
  body.add("p", {}, fmt::format("Ranked by {} (highest first). Each card: thumbnail, rank, {}given label{}{}.", d.name,
                                s.sigma.empty() ? "" : "σ, ", s.has_pass() ? " → the final model's prediction" : "",
                                x.known_noise ? ", and a red frame where the label is known to be wrong" : ""));
  if (!s.has_pass())
    note(body, "No predictions: the final model did not run over the training split (it needs the run's dataset). " +
                   (x.in.data_problem.empty() ? std::string("Run dp-inspect --report where the dataset is.") : x.in.data_problem));
  if (synthetic) note(body, "This run trained on dp-engine's built-in synthetic data: its samples are generated noise "
                            "patterns, so the cards show a placeholder instead of an image.");
  else if (x.in.train == nullptr) note(body, "Thumbnails are missing: " + x.in.data_problem);
  HtmlNode top = body.add("div", {{"class", "grid-samples"}});
  for (int64_t r = 0; r < k; ++r) sample_card(top, x, s, d, order[static_cast<size_t>(r)], r + 1, synthetic);
  body.add("h2", {}, fmt::format("The {} most trusted, for contrast", k));
  HtmlNode bottom = body.add("div", {{"class", "grid-samples"}});
  for (int64_t r = n - 1; r >= std::max<int64_t>(0, n - k); --r)
    sample_card(bottom, x, s, d, order[static_cast<size_t>(r)], r + 1, synthetic);
}

void class_section(HtmlNode body, const Context& x, const SampleScores& s, const std::vector<uint8_t>& flagged,
                   const FlagRule& rule) {
  body.add("h2", {}, "Per class");
  const auto classes = static_cast<int64_t>(std::max<size_t>(x.in.class_names.size(), static_cast<size_t>(x.c.num_classes)));
  std::vector<int64_t> count(classes), flags(classes), wrong(classes);
  std::vector<double> sigma_sum(classes);
  std::vector<std::map<int64_t, int64_t>> taken_for(classes);
  for (size_t i = 0; i < x.noise.label.size(); ++i) {
    const int64_t c = x.noise.label[i];
    if (c < 0 || c >= classes) continue;
    ++count[c];
    wrong[c] += x.wrong[i];
    if (!s.sigma.empty()) sigma_sum[c] += s.sigma[i];
    if (!flagged.empty() && flagged[i]) {
      ++flags[c];
      if (s.has_pass() && s.prediction[i] != c) ++taken_for[c][s.prediction[i]];
    }
  }
  body.add("p", {}, flagged.empty() ? std::string("No flags: no detector to flag with.")
                                    : fmt::format("Flagged: {} ({} samples), the rule of dp-inspect --relabel.",
                                                  rule.describe(),
                                                  std::count(flagged.begin(), flagged.end(), uint8_t{1})));
  HtmlNode t = body.add("table");
  std::vector<std::string> head{"class", "samples", "flagged", "flagged %"};
  if (x.known_noise) head.push_back("wrong labels");
  if (!s.sigma.empty()) head.push_back("mean σ");
  if (!s.class_sigma.empty()) head.push_back("class σ");
  head.push_back("flagged samples most often taken for");
  row(t, head, true);
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<std::string> cells{x.name(c), std::to_string(count[c]), std::to_string(flags[c]),
                                   count[c] ? fmt::format("{:.1f}", 100.0 * flags[c] / count[c]) : "–"};
    std::vector<bool> numeric{false, true, true, true};
    if (x.known_noise) cells.push_back(std::to_string(wrong[c])), numeric.push_back(true);
    if (!s.sigma.empty()) cells.push_back(count[c] ? fixed(sigma_sum[c] / count[c]) : "–"), numeric.push_back(true);
    if (!s.class_sigma.empty()) cells.push_back(c < static_cast<int64_t>(s.class_sigma.size()) ? fixed(s.class_sigma[c]) : "–"), numeric.push_back(true);
    std::vector<std::pair<int64_t, int64_t>> top(taken_for[c].begin(), taken_for[c].end());
    std::sort(top.begin(), top.end(), [](auto a, auto b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    std::string often;
    for (size_t j = 0; j < top.size() && j < 3; ++j) often += (j ? ", " : "") + fmt::format("{} ({})", x.name(top[j].first), top[j].second);
    cells.push_back(s.has_pass() ? often : "(no predictions)");
    numeric.push_back(false);
    row(t, cells, false, numeric);
  }
}

}  // namespace

std::vector<EpochMetrics> read_epoch_metrics(const std::string& path, int64_t epochs) {
  std::map<int64_t, EpochMetrics> by_epoch;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("type", "") != "epoch") continue;  // a torn last line is skipped
    EpochMetrics e;
    e.epoch = j.value("epoch", int64_t{0});
    e.train_loss = j.value("train_loss", NAN);
    e.train_top1 = j.value("train_top1", NAN);
    e.val_loss = j.value("val_loss", NAN);
    e.val_top1 = j.value("val_top1", NAN);
    e.val_top5 = j.value("val_top5", NAN);
    if (e.epoch >= 1 && e.epoch <= epochs) by_epoch[e.epoch] = e;
  }
  std::vector<EpochMetrics> out;
  for (const auto& [epoch, e] : by_epoch) out.push_back(e);
  return out;
}

std::string render_report(const ReportInputs& in, const ReportOptions& opt) {
  const Checkpoint& c = *in.checkpoint;
  DP_CHECK(c.noise.has_value(), c.path + " has no noise map (/noise/*)", "it was not written by dp-train");
  Context x{in, opt, c, *c.noise, {}, 0, false};
  const std::vector<uint8_t> groups = train::sample_groups(x.noise);
  for (uint8_t g : groups) x.wrong.push_back(g == train::kMislabelled);
  x.n_wrong = std::count(x.wrong.begin(), x.wrong.end(), uint8_t{1});
  x.known_noise = x.n_wrong > 0;

  const SampleScores scores = sample_scores(c, in.pass);
  const std::vector<Detector> detectors = label_error_detectors(scores);
  const bool synthetic = in.config->get_string("data.dataset") == "synthetic";

  inspect::HtmlDocument doc("Curriculum report: " + c.path, kCss);
  HtmlNode body = doc.body();
  body.add("h1", {}, "What the curriculum found");
  body.add("p", {{"class", "meta"}}, fmt::format("{} · epoch {} · {}", c.path, c.progress.epoch, opt.generated_by));
  if (!c.theta_inst.defined())
    note(body, "This checkpoint has no instance parameters (data_parameters.learn_inst_parameters was false): the parts "
               "that need σ per sample (σ as a detector, the σ column, ranking by σ) are missing; the rest is shown" +
                   std::string(detectors.empty() ? "." : ", ranked by " + detectors.front().name + "."));
  if (!c.sample_loss.sum.defined())
    note(body, "This checkpoint has no per-sample loss record (/history/sample_loss_*, written by dp-train since issue "
               "23): the mean-training-loss detector is missing.");
  run_section(body, x);
  sigma_section(body, x);
  detector_section(body, x, detectors);
  if (detectors.empty()) {
    body.add("h2", {}, "Samples");
    note(body, "Nothing ranks the samples: no instance parameters, no loss record, and no pass of the model over the "
               "training split.");
    return doc.str();
  }
  const Detector& ranking = [&]() -> const Detector& {
    for (const Detector& d : detectors)
      if (d.key == opt.flag.rank_by) return d;
    return detectors.front();
  }();
  grids_section(body, x, scores, ranking, synthetic);
  // A fraction applies to whichever detector ranks; a threshold only to its own.
  FlagRule rule = opt.flag;
  if (rule.top_fraction > 0) rule.rank_by = ranking.key;
  const std::vector<uint8_t> flagged = rule.rank_by == ranking.key ? flag_samples(ranking, rule) : std::vector<uint8_t>{};
  class_section(body, x, scores, flagged, rule);
  return doc.str();
}

}  // namespace dp::app
