// Labels to fix (issue 23): the detectors and flag rules (app/curriculum.h), dp-inspect's relabel
// plan and file (app/relabel.h), read back by dp-train (data.relabel_file: data/label_noise.h
// apply_relabel_file, app/run_data.cpp), and the CSV reading and writing under them
// (data/csv_table.h).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "app/checkpoint_schema.h"
#include "app/config.h"
#include "app/curriculum.h"
#include "app/relabel.h"
#include "app/run_data.h"
#include "app/trainer.h"
#include "data/csv_table.h"
#include "engine/error.h"

using namespace dp;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "dp-relabel-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The message of the dp::Error `f` throws ("" and a test failure when it does not).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// A synthetic run's settings: 96 samples with 40% permutation noise.
std::vector<std::string> run_settings(const std::string& output) {
  return {"data.synthetic_train_size=96", "data.synthetic_test_size=32", "data.image_size=12", "data.noise=permute",
          "data.rand_fraction=0.4", "model.arch=tiny-cnn", "optim.batch_size=32", "run.epochs=1",
          "run.workers=1", "run.output=" + output};
}

}  // namespace

TEST(CsvTable, QuotedFieldsRoundTrip) {
  const std::string dir = temp_dir();
  const std::vector<std::string> awkward{"plain", "a,b", "say \"hi\"", "two\nlines", "", " padded "};
  std::string text = "n,text\n";
  for (size_t i = 0; i < awkward.size(); ++i) text += std::to_string(i) + "," + data::csv_field(awkward[i]) + "\n";
  write(dir + "/t.csv", text);
  const data::CsvTable t = data::read_csv_table(dir + "/t.csv");
  ASSERT_EQ(t.rows.size(), awkward.size());
  for (size_t i = 0; i < awkward.size(); ++i) EXPECT_EQ(t.rows[i][t.column("text")], awkward[i]) << i;
  EXPECT_EQ(data::csv_field("plain"), "plain") << "no quotes where none are needed";

  write(dir + "/short.csv", "a,b\n1,2\n3\n");
  const std::string e1 = error_of([&] { data::read_csv_table(dir + "/short.csv"); });
  EXPECT_NE(e1.find("line 3"), std::string::npos) << e1;
  write(dir + "/quote.csv", "a,b\n1,\"open\n");
  EXPECT_NE(error_of([&] { data::read_csv_table(dir + "/quote.csv"); }).find("quote.csv"), std::string::npos);
  const std::string e2 = error_of([&] { t.column("nope"); });
  EXPECT_NE(e2.find("n, text"), std::string::npos) << "the message lists the columns: " << e2;
  fs::remove_all(dir);
}

TEST(Relabel, PlanRelabelsToASurePredictionOrDrops) {
  const std::vector<uint8_t> flagged{1, 1, 0, 1, 0, 1};
  const std::vector<int64_t> labels{0, 1, 2, 3, 4, 5}, predictions{5, 1, 7, 2, 4, 6};
  const std::vector<float> confidences{0.9f, 0.8f, 0.9f, 0.5f, 0.9f, 0.3f};
  using A = app::RelabelAction;
  app::RelabelPlan p = app::plan_relabel(flagged, labels, predictions, confidences, app::FlaggedPolicy::kRelabelOrDrop);
  EXPECT_EQ(p.action, (std::vector<A>{A::kRelabel, A::kDrop, A::kKeep, A::kRelabel, A::kKeep, A::kDrop}))
      << "flagged: the model's other class when it gives it >= 0.5, else dropped (also where it agrees with the "
         "given label); unflagged: kept";
  EXPECT_EQ(p.relabel, 2);
  EXPECT_EQ(p.drop, 2);
  p = app::plan_relabel(flagged, labels, predictions, confidences, app::FlaggedPolicy::kRelabelOrDrop, 0.0);
  EXPECT_EQ(p.action[5], A::kRelabel) << "any confidence";
  p = app::plan_relabel(flagged, labels, predictions, confidences, app::FlaggedPolicy::kDrop);
  EXPECT_EQ(p.action, (std::vector<A>{A::kDrop, A::kDrop, A::kKeep, A::kDrop, A::kKeep, A::kDrop}));
  EXPECT_THROW(app::plan_relabel({1}, labels, predictions, confidences, app::FlaggedPolicy::kDrop), Error);
}

// The file dp-inspect writes is the file dp-train reads: the training labels become the suggested
// ones, dropped samples leave the training set, and the run trains on exactly that.
TEST(Relabel, FileRoundTripsIntoTheLabelsTheRunTrainsOn) {
  const std::string dir = temp_dir();
  const app::Config plain = app::Config::from_string("", "run.toml", run_settings(dir + "/a"));
  const app::RunData before = app::make_run_data(plain);
  const int64_t n = before.noise.size(), classes = before.num_classes;
  std::vector<int64_t> predictions(n);
  std::vector<uint8_t> flagged(n, 0);
  std::vector<float> score(n), confidence(n, 0.9f);
  for (int64_t i = 0; i < n; ++i) {
    predictions[i] = i % 5 == 0 ? (before.noise.label[i] + 1) % classes : before.noise.label[i];
    flagged[i] = i % 5 == 0 || i % 7 == 0;  // some flagged with another prediction (relabel), some agreeing (drop)
    score[i] = static_cast<float>(i);
  }
  const app::RelabelPlan plan =
      app::plan_relabel(flagged, before.noise.label, predictions, confidence, app::FlaggedPolicy::kRelabelOrDrop);
  ASSERT_GT(plan.relabel, 0);
  ASSERT_GT(plan.drop, 0);
  app::RelabelColumns cols;
  cols.labels = &before.noise.label;
  cols.predictions = &predictions;
  cols.path = [](int64_t i) { return "images/a, \"b\"/" + std::to_string(i) + ".jpg"; };  // needs quoting
  cols.class_name = [](int64_t c) { return "class <" + std::to_string(c) + ">"; };
  cols.score_name = "sigma";
  cols.score = &score;
  const std::string csv = dir + "/relabel.csv";
  app::write_relabel_csv(csv, plan, cols);

  std::vector<std::string> sets = run_settings(dir + "/b");
  sets.push_back("data.relabel_file=" + csv);
  const app::Config cleaned = app::Config::from_string("", "run.toml", sets);
  const app::RunData after = app::make_run_data(cleaned);
  EXPECT_EQ(after.relabelled, plan.relabel);
  EXPECT_EQ(after.dropped, plan.drop);
  ASSERT_EQ(after.train->size(), n - plan.drop);
  ASSERT_EQ(after.noise.size(), n - plan.drop);
  int64_t k = 0;  // the kept samples, in order
  for (int64_t i = 0; i < n; ++i) {
    if (plan.action[i] == app::RelabelAction::kDrop) continue;
    const int64_t want = plan.action[i] == app::RelabelAction::kRelabel ? predictions[i] : before.noise.label[i];
    EXPECT_EQ(after.train->label(k), want) << "sample " << i;
    EXPECT_EQ(after.noise.label[k], want);
    EXPECT_EQ(after.noise.original_label[k], before.noise.original_label[i]) << "the true class stays";
    EXPECT_EQ(after.train->source(k), before.train->source(i)) << "the same image";
    ++k;
  }

  // dp-train trains on them: its checkpoint records the relabelled, smaller training set.
  app::TrainerOptions quiet;
  quiet.quiet = true;
  {
    app::Trainer t(cleaned, quiet);  // scoped: its run lock is released before the resume below
    t.run();
  }
  const app::Checkpoint c = app::read_checkpoint(dir + "/b/checkpoint.h5");
  ASSERT_TRUE(c.noise.has_value());
  EXPECT_EQ(c.noise->label, after.noise.label);
  EXPECT_EQ(c.sample_loss.count.to_float_vector(), std::vector<float>(static_cast<size_t>(n - plan.drop), 1.f))
      << "every kept sample trained on once, the dropped never";
  // And resumes from it: the relabel file rebuilds the same noise map.
  app::TrainerOptions resume = quiet;
  resume.resume = dir + "/b/checkpoint.h5";
  EXPECT_NO_THROW(app::Trainer(app::Config::from_string("", "run.toml", sets), resume));
  fs::remove_all(dir);
}

TEST(Relabel, AFileOfAnotherRunOrWithMistakesIsRefusedNamingTheLine) {
  const std::string dir = temp_dir();
  const app::RunData r = app::make_run_data(app::Config::from_string("", "run.toml", run_settings(dir + "/a")));
  const int64_t n = r.noise.size();
  auto file = [&](int64_t edit_row, const std::string& edited) {
    std::string text = "index,path,label,suggested_label,action\n";
    for (int64_t i = 0; i < n; ++i)
      text += i == edit_row ? edited + "\n" : fmt::format("{},p{},{},{},keep\n", i, i, r.noise.label[i], r.noise.label[i]);
    write(dir + "/r.csv", text);
    return dir + "/r.csv";
  };
  auto refuse = [&](const std::string& path, const std::vector<std::string>& expected) {
    const std::string e = error_of([&] { data::apply_relabel_file(r.noise, path, r.num_classes); });
    for (const std::string& s : expected) EXPECT_NE(e.find(s), std::string::npos) << "'" << s << "' not in: " << e;
  };
  const int64_t other = (r.noise.label[3] + 1) % r.num_classes;
  refuse(file(3, fmt::format("3,p3,{},{},keep", other, other)), {"line 5", "another run", "dp-inspect --relabel"});
  refuse(file(3, fmt::format("2,p3,{},{},keep", r.noise.label[2], r.noise.label[2])), {"line 5", "repeated"});
  refuse(file(3, fmt::format("3,p3,{},{},fix", r.noise.label[3], r.noise.label[3])), {"line 5", "'fix'", "keep, relabel or drop"});
  refuse(file(3, fmt::format("3,p3,{},{},relabel", r.noise.label[3], r.num_classes)), {"line 5", "suggested_label"});
  EXPECT_NO_THROW(data::apply_relabel_file(r.noise, file(-1, ""), r.num_classes)) << "the unedited file";
  std::string text = "index,path,label,suggested_label,action\n";
  for (int64_t i = 0; i + 1 < n; ++i) text += fmt::format("{},p,{},{},keep\n", i, r.noise.label[i], r.noise.label[i]);
  write(dir + "/short.csv", text);
  refuse(dir + "/short.csv", {"lists " + std::to_string(n - 1) + " samples", std::to_string(n)});
  write(dir + "/cols.csv", "index,label,action\n0,1,keep\n");
  refuse(dir + "/cols.csv", {"suggested_label"});
  fs::remove_all(dir);
}

TEST(Curriculum, DetectorsAndFlags) {
  app::SampleScores s;
  s.sigma = {0.5f, 2.0f, 1.0f, 3.0f, 0.9f};
  s.mean_train_loss = {0.1f, 1.5f, std::nanf(""), 2.0f, 0.3f};
  s.final_loss = {0.05f, 2.0f, 0.7f, 3.0f, 0.2f};
  s.margin = {0.9f, 0.2f, 0.5f, 0.1f, 0.8f};
  s.prediction = {0, 4, 2, 1, 4};
  const std::vector<app::Detector> d = app::label_error_detectors(s);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].key, "sigma");
  EXPECT_EQ(d[1].key, "mean_train_loss");
  EXPECT_NEAR(d[2].suspicion[1], 1.0 - std::exp(-2.0), 1e-6) << "1 - p[given label]";
  EXPECT_FLOAT_EQ(d[3].suspicion[3], 0.9f) << "1 - normalised margin";
  EXPECT_NE(error_of([&] { app::find_detector(app::label_error_detectors(app::SampleScores{}), "sigma"); })
                .find("available: none"),
            std::string::npos);

  app::FlagRule top;
  top.top_fraction = 0.4;  // 2 of 5
  EXPECT_EQ(app::flag_samples(d[0], top), (std::vector<uint8_t>{0, 1, 0, 1, 0}));
  top.top_fraction = 0.8;  // 4 of 5, but a sample without a score is never flagged
  EXPECT_EQ(app::flag_samples(d[1], top), (std::vector<uint8_t>{1, 1, 0, 1, 1}));
  app::FlagRule above;
  above.above = 0.95;
  EXPECT_EQ(app::flag_samples(d[0], above), (std::vector<uint8_t>{0, 1, 1, 1, 0}));
  above.top_fraction = 0.5;
  EXPECT_THROW(app::flag_samples(d[0], above), Error) << "both a fraction and a threshold";

  const std::vector<int64_t> labels{0, 1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(app::disputed_fraction(labels, s), 0.4) << "the model predicts another class for samples 1 and 3";
  const app::FlagRule by_sigma = app::make_flag_rule("sigma", -1, -1, 1.0, labels, s);
  EXPECT_DOUBLE_EQ(by_sigma.above, 1.0) << "by σ: above its starting value";
  EXPECT_NE(by_sigma.describe().find("starting value"), std::string::npos) << by_sigma.describe();
  const app::FlagRule chosen = app::make_flag_rule("mean_train_loss", -1, -1, 1.0, labels, s);
  EXPECT_DOUBLE_EQ(chosen.top_fraction, 0.4);
  EXPECT_NE(chosen.describe().find("does not predict"), std::string::npos) << chosen.describe();
  EXPECT_DOUBLE_EQ(app::make_flag_rule("mean_train_loss", -1, -1, NAN, labels, app::SampleScores{}).top_fraction, 0.1);
  EXPECT_DOUBLE_EQ(app::make_flag_rule("sigma", -1, 1.5, 1.0, labels, s).above, 1.5);
  EXPECT_THROW(app::make_flag_rule("mean_train_loss", -1, 1.5, 1.0, labels, s), Error) << "--sigma-above is for σ";
  // The starting σ as the first clamp leaves it: the reference's joint preset starts at 0.001 -> 0.05.
  auto start = [](std::vector<std::string> sets) {
    sets.push_back("data_parameters.learn_inst_parameters=true");
    return app::initial_instance_sigma(app::Config::from_string("", "t.toml", sets));
  };
  EXPECT_DOUBLE_EQ(start({}), 1.0);
  EXPECT_NEAR(start({"data_parameters.init_inst_param=0.001"}), 0.05, 1e-6);
  EXPECT_DOUBLE_EQ(start({"data_parameters.init_inst_param=0.001", "data_parameters.skip_clamp_data_param=true"}), 0.001);
  EXPECT_TRUE(std::isnan(app::initial_instance_sigma(app::Config::from_string("", "t.toml"))));
}
