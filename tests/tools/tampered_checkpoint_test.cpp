// The tools on damaged checkpoints (issue 13): dp-export wrote a classifier.weight [10, 15] that
// dp-eval rejects, dp-inspect read past a short noise/label. Both now read through the schema
// and stop with an error naming the file and the dataset.
// Usage (from meson): tampered_checkpoint_tests DP_EXPORT DP_INSPECT DP_EVAL
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/app/checkpoint_fixture.h"

using namespace dp;

namespace {

std::string g_export, g_inspect, g_eval;

struct Result {
  int rc = 0;
  std::string output;
};

Result run(const std::string& command) {
  Result r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  r.rc = pclose(p);
  return r;
}

std::string tampered(const std::string& dir, const std::string& name, const Tensor& replacement) {
  io::TensorFile f = app::encode_checkpoint(fixture::small_checkpoint());
  for (auto& [n, t] : f.tensors)
    if (n == name) t = replacement;
  std::string path = dir + "/checkpoint.h5";
  io::write_tensor_file_atomic(path, f);
  return path;
}

}  // namespace

TEST(TamperedCheckpoint, DpExportRefusesAWrongShape) {
  std::string dir = fixture::temp_dir("dp-tools");
  std::string path = tampered(dir, "model/classifier.weight", Tensor::zeros({10, 15}));
  for (const char* format : {"safetensors", "hdf5"}) {
    std::string out = dir + "/model." + format;
    Result r = run(g_export + " " + path + " --format " + format + " -o " + out);
    EXPECT_NE(r.rc, 0) << r.output;
    EXPECT_NE(r.output.find("/model/classifier.weight"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(path), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << "nothing is written from a damaged checkpoint";
  }
  std::filesystem::remove_all(dir);
}

TEST(TamperedCheckpoint, DpInspectRefusesAShortNoiseMap) {
  std::string dir = fixture::temp_dir("dp-tools");
  std::string path = tampered(dir, "noise/label", Tensor::from_vector(std::vector<int64_t>{0, 1}, {2}));
  Result r = run(g_inspect + " " + path + " -o " + dir + "/inspect");
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("/noise/"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/inspect/sigma_ranking.csv"));
  std::filesystem::remove_all(dir);
}

TEST(TamperedCheckpoint, DpEvalRefusesAWrongShape) {
  std::string dir = fixture::temp_dir("dp-tools");
  std::string path = tampered(dir, "model/classifier.weight", Tensor::zeros({15, 10}));
  Result r = run(g_eval + " " + path);
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("/model/classifier.weight"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s DP_EXPORT DP_INSPECT DP_EVAL\n", argv[0]);
    return 2;
  }
  g_export = argv[1];
  g_inspect = argv[2];
  g_eval = argv[3];
  return RUN_ALL_TESTS();
}
