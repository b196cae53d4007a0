// The curriculum report's parts (issue 23): HTML built and escaped by libxml2, base64, the SVG
// plots, thumbnails (a sample that cannot be read gets a reason, never an exception), and the whole
// report of small synthetic runs: with instance parameters, and without (the parts that need σ say
// so, the rest is there).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "app/checkpoint_schema.h"
#include "app/inspect/html.h"
#include "app/inspect/svg_plot.h"
#include "app/inspect/thumbnail.h"
#include "app/report.h"
#include "app/run_data.h"
#include "app/trainer.h"
#include "data/packed.h"
#include "engine/error.h"

using namespace dp;
using namespace dp::app::inspect;
namespace fs = std::filesystem;

namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

std::string temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "dp-report-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

// Samples for thumbnails: 0 an in-memory 40×30 RGB image, 1 the JPEG of a 640×480 image, 2 bytes
// that are no image, 3 a file that is gone.
class FourSamples final : public data::Dataset {
 public:
  FourSamples() {
    small_ = data::Image(30, 40, 3);
    for (size_t i = 0; i < small_.pixels.size(); ++i) small_.pixels[i] = static_cast<uint8_t>(i * 7);
    big_ = data::Image(480, 640, 3);
    for (size_t i = 0; i < big_.pixels.size(); ++i) big_.pixels[i] = static_cast<uint8_t>(i / 3 % 251);
  }
  int64_t size() const override { return 4; }
  int64_t num_classes() const override { return 2; }
  int64_t label(int64_t) const override { return 0; }
  data::RawSample load(int64_t index) const override {
    data::RawSample s;
    s.index = index;
    s.source = "sample" + std::to_string(index);
    if (index == 0) s.image = small_;
    if (index == 1) s.encoded = big_jpeg();
    if (index == 2) s.encoded = {1, 2, 3, 4};
    if (index == 3) DP_THROW("cannot open '/gone/3.jpg': No such file or directory", "check data.path");
    return s;
  }
  std::string source(int64_t index) const override { return "sample" + std::to_string(index); }

 private:
  std::vector<uint8_t> big_jpeg() const;  // encoded through make_thumbnail's own encoder
  data::Image small_, big_;
};

class OneImage final : public data::Dataset {
 public:
  explicit OneImage(const data::Image& image) : image_(image) {}
  int64_t size() const override { return 1; }
  int64_t num_classes() const override { return 1; }
  int64_t label(int64_t) const override { return 0; }
  data::RawSample load(int64_t) const override {
    data::RawSample s;
    s.image = image_;
    return s;
  }
  std::string source(int64_t) const override { return "image"; }

 private:
  data::Image image_;
};

std::vector<uint8_t> FourSamples::big_jpeg() const { return make_thumbnail(OneImage(big_), 0, 4096).jpeg; }

app::Config small_run(const std::string& output, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = {"data.synthetic_train_size=256", "data.synthetic_test_size=64", "data.image_size=12",
                                   "data.noise=permute", "data.rand_fraction=0.4", "model.arch=tiny-cnn",
                                   "optim.batch_size=32", "run.epochs=2", "run.workers=1", "run.output=" + output};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return app::Config::from_string("", "test.toml", sets);
}

}  // namespace

TEST(Html, TextAndAttributesAreEscapedByTheSerialiser) {
  HtmlDocument doc("a <title> & more", "p { color: red }");
  HtmlNode body = doc.body();
  body.add("p", {{"title", "say \"<hi>\" & 'bye'"}}, "<script>alert(1)</script> & σ → cat");
  body.add("img", {{"src", data_uri("image/png", {1, 2, 3})}, {"alt", "x"}});
  const std::string html = doc.str();
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u) << html.substr(0, 40);
  EXPECT_EQ(count(html, "<script"), 0u) << html;
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"), std::string::npos) << html;
  EXPECT_NE(html.find("title=\"say &quot;&lt;hi&gt;&quot; &amp; 'bye'\""), std::string::npos) << html;
  EXPECT_NE(html.find("<title>a &lt;title&gt; &amp; more</title>"), std::string::npos) << html;
  EXPECT_NE(html.find("&sigma;"), std::string::npos) << "non-ASCII as character references";
  EXPECT_NE(html.find("src=\"data:image/png;base64,AQID\""), std::string::npos) << html;
  EXPECT_EQ(count(html, "</img>"), 0u) << "img is a void element";
  EXPECT_NE(html.find("<style>p { color: red }</style>"), std::string::npos) << html;
  EXPECT_THROW(doc.body().add("style").style_text("</style><script>"), Error);
}

// A Latin-1 file name is not UTF-8: its stray byte becomes U+FFFD instead of garbling the page.
TEST(Html, BytesThatAreNotUtf8ShowAsReplacementCharacters) {
  HtmlDocument doc("t", "");
  doc.body().add("p", {{"title", "caf\xe9.jpg"}}, "caf\xe9.jpg, \xcf\x83 ok");
  const std::string html = doc.str();
  EXPECT_NE(html.find("<p title=\"caf&#65533;.jpg\">caf&#65533;.jpg, &sigma; ok</p>"), std::string::npos) << html;
}

TEST(Html, Base64) {
  EXPECT_EQ(base64({}), "");
  EXPECT_EQ(base64({'h', 'e', 'l', 'l', 'o'}), "aGVsbG8=");
  EXPECT_EQ(base64({0xfb, 0xff}), "+/8=");
}

TEST(SvgPlot, TicksAndGapsAtMissingPoints) {
  EXPECT_EQ(nice_ticks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_EQ(nice_ticks(1, 15), (std::vector<double>{5, 10, 15}));
  HtmlDocument doc("t", "");
  LinePlot p;
  p.title = "loss <per> epoch";
  PlotSeries a, b;
  a.name = "train";
  a.x = {1, 2, 3, 4, 5};
  a.y = {2, 1.5, NAN, 1.2, 1.1};  // a gap: two polylines
  b.name = "val";
  b.x = {1, 2};
  b.y = {2.2, 2.0};
  p.series = {a, b};
  add_line_plot(doc.body(), p);
  const std::string html = doc.str();
  EXPECT_EQ(count(html, "<polyline"), 3u) << html;
  EXPECT_EQ(count(html, "<svg"), 1u);
  EXPECT_NE(html.find("loss &lt;per&gt; epoch"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos) << "no NaN coordinate reaches the page";
}

TEST(Thumbnail, ShrinksLargeImagesAndExplainsUnreadableOnes) {
  FourSamples d;
  const Thumbnail small = make_thumbnail(d, 0, 96);
  ASSERT_FALSE(small.jpeg.empty()) << small.error;
  EXPECT_EQ(small.width, 40) << "small images keep their size (the page scales them)";
  EXPECT_EQ(small.height, 30);
  const Thumbnail big = make_thumbnail(d, 1, 96);
  ASSERT_FALSE(big.jpeg.empty()) << big.error;
  EXPECT_EQ(big.width, 96);
  EXPECT_EQ(big.height, 72);
  EXPECT_EQ(big.jpeg[0], 0xff);
  EXPECT_EQ(big.jpeg[1], 0xd8) << "a JPEG";
  const Thumbnail garbage = make_thumbnail(d, 2, 96);
  EXPECT_TRUE(garbage.jpeg.empty());
  EXPECT_FALSE(garbage.error.empty());
  const Thumbnail gone = make_thumbnail(d, 3, 96);
  EXPECT_TRUE(gone.jpeg.empty());
  EXPECT_NE(gone.error.find("/gone/3.jpg"), std::string::npos) << gone.error;
  EXPECT_EQ(gone.error.find('\n'), std::string::npos) << "one line for a tooltip";
}

// The whole report of a synthetic run with instance parameters: every section, σ and the other
// detectors with the verdict, placeholders for synthetic images, escaped class names.
TEST(Report, SyntheticRunWithInstanceParameters) {
  const std::string dir = temp_dir();
  app::TrainerOptions quiet;
  quiet.quiet = true;
  const app::Config config = small_run(dir, {"data_parameters.learn_inst_parameters=true", "data_parameters.lr_inst_param=0.2"});
  app::Trainer(config, quiet).run();
  const app::Checkpoint c = app::read_checkpoint(dir + "/checkpoint.h5");
  const app::RunData data = app::make_run_data(config);
  auto model = app::make_checkpoint_model(c);
  const app::EvalResult pass = app::evaluate(*model, data.train, data.test_transform, 64, 1, Device::cpu(),
                                             MemoryFormat::Contiguous, /*per_sample=*/true);
  // The pass's per-sample outputs agree with each other: p[label] = exp(-loss) <= p[prediction],
  // and the normalised margin is (p[label] - p[best other] + 1) / 2, the best other being the
  // prediction wherever it is not the label.
  for (size_t i = 0; i < pass.sample_loss.size(); ++i) {
    const double p_label = std::exp(-pass.sample_loss[i]), p_pred = pass.sample_confidence[i];
    ASSERT_LE(p_label, p_pred + 1e-6) << i;
    ASSERT_LE(p_pred, 1.0 + 1e-6) << i;
    if (pass.sample_prediction[i] != data.noise.label[i])
      ASSERT_NEAR(2.0 * pass.sample_margin[i] - 1.0, p_label - p_pred, 1e-5) << i;
    else
      ASSERT_NEAR(p_label, p_pred, 1e-5) << i;
  }
  app::ReportInputs in;
  in.checkpoint = &c;
  in.config = &config;
  in.metrics_jsonl = dir + "/metrics.jsonl";
  in.train = data.train.get();
  in.pass = &pass;
  for (int c2 = 0; c2 < 10; ++c2) in.class_names.push_back("class <" + std::to_string(c2) + "> & co");
  app::ReportOptions o;
  o.samples = 12;
  o.flag.top_fraction = 0.25;
  const std::string html = app::render_report(in, o);
  for (const char* part : {"The run", "&sigma; over the epochs", "beside other detectors", "most distrusted", "most trusted",
                           "Per class", "ROC-AUC", "precision@100", "Best by ROC-AUC"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  EXPECT_EQ(count(html, "built-in synthetic data: no image"), 24u) << "12 distrusted + 12 trusted cards";
  EXPECT_EQ(count(html, "class <"), 0u) << "class names are escaped";
  EXPECT_GT(count(html, "class &lt;"), 24u);
  EXPECT_EQ(count(html, "<svg"), 3u) << "loss, top-1, precision-recall";
  EXPECT_NE(html.find("mean training loss"), std::string::npos);
  EXPECT_NE(html.find("1 &minus; normalised margin"), std::string::npos) << "all four detectors";
  EXPECT_EQ(count(html, "<script"), 0u) << "the page needs no script";
  fs::remove_all(dir);
}

// A baseline's checkpoint (no data parameters), its dataset gone: the report says what is missing
// and why, ranks by the mean training loss, and shows placeholders.
TEST(Report, BaselineWithoutItsDatasetShowsWhatExists) {
  const std::string dir = temp_dir();
  app::TrainerOptions quiet;
  quiet.quiet = true;
  const app::Config config = small_run(dir);
  app::Trainer(config, quiet).run();
  const app::Checkpoint c = app::read_checkpoint(dir + "/checkpoint.h5");
  app::ReportInputs in;
  in.checkpoint = &c;
  in.config = &config;
  in.metrics_jsonl = dir + "/no-such-metrics.jsonl";
  in.data_problem = "config: data.path = \"/gone\" is not a folder";
  app::ReportOptions o;
  o.samples = 5;
  o.flag.top_fraction = 0.1;
  const std::string html = app::render_report(in, o);
  EXPECT_NE(html.find("has no instance parameters"), std::string::npos);
  EXPECT_NE(html.find("ranked by mean training loss"), std::string::npos);
  EXPECT_NE(html.find("No per-epoch metrics"), std::string::npos);
  EXPECT_NE(html.find("This run learnt no data parameters"), std::string::npos);
  EXPECT_NE(html.find("No predictions"), std::string::npos);
  EXPECT_NE(html.find("Flagged: the top 10% by mean_train_loss (26 samples)"), std::string::npos)
      << "the fraction applies to the detector that ranks";
  EXPECT_EQ(count(html, "σ (instance)"), 0u);
  EXPECT_EQ(count(html, "&sigma; (instance)"), 0u);
  fs::remove_all(dir);
}

TEST(Report, EpochMetricsTakeTheLastLineOfEachEpoch) {
  const std::string dir = temp_dir();
  std::ofstream(dir + "/m.jsonl") << R"({"type":"epoch","epoch":1,"val_top1":10})" "\n"
                                  << R"({"type":"iteration","epoch":2,"loss":3})" "\n"
                                  << R"({"type":"epoch","epoch":2,"val_top1":20})" "\n"
                                  << R"({"type":"epoch","epoch":2,"val_top1":25})" "\n"  // resumed: the later line
                                  << R"({"type":"epoch","epoch":3,"val_top1":30})" "\n"  // beyond the checkpoint
                                  << R"({"type":"epo)";                                    // torn last line
  const std::vector<app::EpochMetrics> m = app::read_epoch_metrics(dir + "/m.jsonl", 2);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1].val_top1, 25);
  EXPECT_TRUE(std::isnan(m[0].train_loss));
  EXPECT_TRUE(app::read_epoch_metrics(dir + "/missing.jsonl", 2).empty());
  fs::remove_all(dir);
}

// A dp-pack folder's classes.txt names the classes in reports (was: the label numbers, so the
// report and relabel file of a packed CIFAR-10 run said "6 -> 3" instead of "frog -> cat").
TEST(ClassNames, PackedDatasetsUseTheirClassesFile) {
  const std::string dir = temp_dir();
  struct Encoded final : data::Dataset {
    std::vector<uint8_t> jpeg = make_thumbnail(FourSamples(), 0, 96).jpeg;
    int64_t size() const override { return 2; }
    int64_t num_classes() const override { return 2; }
    int64_t label(int64_t i) const override { return i; }
    data::RawSample load(int64_t i) const override {
      data::RawSample s;
      s.index = i;
      s.label = i;
      s.encoded = jpeg;
      return s;
    }
    std::string source(int64_t i) const override { return "img" + std::to_string(i) + ".jpg"; }
  } source;
  data::write_packed_split(source, {"frog <1>", "cat"}, dir, "train", {});
  const data::PackedDataset packed(dir, "train");
  EXPECT_EQ(packed.classes(), (std::vector<std::string>{"frog <1>", "cat"}));
  app::DataSettings settings;  // the report's class names come from the registry: classes.txt
  settings.kind = "packed";
  settings.path = dir;
  EXPECT_EQ(app::class_names(settings, 2), (std::vector<std::string>{"frog <1>", "cat"}));
  fs::remove_all(dir);
}
