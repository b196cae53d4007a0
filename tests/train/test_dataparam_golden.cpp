// 50-iteration trajectories of θ, momentum buffers and losses against PyTorch
// (scripts/make_dataparam_goldens.py): joint mode with the init clamp, instance-only,
// class-only, with and without weight decay, no clamp, bound-hitting rates, rows whose gradient
// underflows to exactly zero and duplicate instances.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "train/data_parameters.h"

namespace {

struct Array {
  int dtype = 0;  // 0 float32, 1 float64, 2 int64
  std::vector<int64_t> dims;
  std::vector<char> bytes;
  template <class T> const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

std::map<std::string, Array> load_golden() {
  const char* src = std::getenv("DP_SOURCE_DIR");
  const std::string path = std::string(src ? src : ".") + "/tests/train/golden/dataparam_trajectories.bin";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path + " (set DP_SOURCE_DIR)");
  char magic[8];
  f.read(magic, 8);
  if (std::string(magic, 8) != "DPGOLD01") throw std::runtime_error(path + ": bad magic");
  uint32_t count = 0;
  f.read(reinterpret_cast<char*>(&count), 4);
  std::map<std::string, Array> out;
  for (uint32_t e = 0; e < count; ++e) {
    uint32_t len = 0;
    f.read(reinterpret_cast<char*>(&len), 4);
    std::string name(len, '\0');
    f.read(name.data(), len);
    Array a;
    uint8_t dt = 0;
    uint32_t ndim = 0;
    f.read(reinterpret_cast<char*>(&dt), 1);
    f.read(reinterpret_cast<char*>(&ndim), 4);
    a.dtype = dt;
    a.dims.resize(ndim);
    f.read(reinterpret_cast<char*>(a.dims.data()), 8 * ndim);
    a.bytes.resize(static_cast<size_t>(a.numel()) * (dt == 0 ? 4 : 8));
    f.read(a.bytes.data(), static_cast<std::streamsize>(a.bytes.size()));
    if (!f) throw std::runtime_error(path + ": truncated at entry " + name);
    out[name] = std::move(a);
  }
  return out;
}

const std::map<std::string, Array>& golden() {
  static const std::map<std::string, Array> g = load_golden();
  return g;
}

// |a − b| ≤ 1e-6·max(|a|, |b|), with an absolute floor of 1e-6 × the tensor's largest magnitude
// for entries near zero (float32 carries ~6e-8 relative precision; PyTorch's vectorised sums
// round differently from our double accumulation).
void expect_trajectory(const std::vector<float>& ours, const float* ref, int64_t n, double scale,
                       const std::string& what, int t) {
  for (int64_t i = 0; i < n; ++i) {
    const double a = ours[i], b = ref[i];
    const double tol = 1e-6 * std::max({std::abs(a), std::abs(b), scale * 1e-1});
    ASSERT_LE(std::abs(a - b), tol) << what << "[" << i << "] at iteration " << t << ": ours " << a
                                    << " torch " << b;
  }
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, Trajectory) {
  const auto& g = golden();
  const std::string name = GetParam();
  const Array& logits = g.at("logits");
  const Array& labels = g.at("labels");
  const Array& indices = g.at("indices");
  const int64_t T = logits.dims[0], B = logits.dims[1], C = logits.dims[2];
  const double* cfg = g.at(name + "/config").as<double>();
  const Array& th_c = g.at(name + "/theta_class");
  const Array& th_i = g.at(name + "/theta_inst");
  const Array& bf_c = g.at(name + "/buf_class");
  const Array& bf_i = g.at(name + "/buf_inst");
  const Array& sig = g.at(name + "/sigma");
  const double* losses = g.at(name + "/loss").as<double>();
  const int64_t N = th_i.dims[1];

  dp::train::DataParamConfig c;
  c.learn_class_parameters = cfg[0] != 0;
  c.learn_inst_parameters = cfg[1] != 0;
  c.init_class_param = cfg[2];
  c.init_inst_param = cfg[3];
  c.lr_class_param = cfg[4];
  c.lr_inst_param = cfg[5];
  c.wd_class_param = cfg[6];
  c.wd_inst_param = cfg[7];
  c.skip_clamp_data_param = cfg[8] != 0;
  dp::train::DataParameters params(c, C, N);

  double scale_c = 0, scale_i = 0, scale_bc = 0, scale_bi = 0;
  for (int64_t k = 0; k < th_c.numel(); ++k) scale_c = std::max<double>(scale_c, std::abs(th_c.as<float>()[k]));
  for (int64_t k = 0; k < th_i.numel(); ++k) scale_i = std::max<double>(scale_i, std::abs(th_i.as<float>()[k]));
  for (int64_t k = 0; k < bf_c.numel(); ++k) scale_bc = std::max<double>(scale_bc, std::abs(bf_c.as<float>()[k]));
  for (int64_t k = 0; k < bf_i.numel(); ++k) scale_bi = std::max<double>(scale_bi, std::abs(bf_i.as<float>()[k]));

  int64_t absent_rows_seen = 0;
  for (int t = 0; t < T; ++t) {
    std::vector<float> z(logits.as<float>() + t * B * C, logits.as<float>() + (t + 1) * B * C);
    std::vector<int64_t> y(labels.as<int64_t>() + t * B, labels.as<int64_t>() + (t + 1) * B);
    std::vector<int64_t> idx(indices.as<int64_t>() + t * B, indices.as<int64_t>() + (t + 1) * B);
    auto out = params.loss(dp::Tensor::from_vector(z, {B, C}), dp::Tensor::from_vector(y, {B}),
                           dp::Tensor::from_vector(idx, {B}));
    const double loss = out.loss.item();
    EXPECT_NEAR(loss, losses[t], 1e-6 * std::abs(losses[t]) + 1e-7) << "loss at iteration " << t;
    expect_trajectory(out.sigma.to_float_vector(), sig.as<float>() + t * B, B, 1.0, "sigma", t);
    if (t % 5 == 3 && c.learn_inst_parameters && c.wd_inst_param == 0)
      absent_rows_seen += out.dtheta_inst_rows.to_float_vector()[0] == 0.0f;
    params.step();
    if (c.learn_class_parameters) {
      expect_trajectory(params.theta_class().to_float_vector(), th_c.as<float>() + t * C, C, scale_c,
                        "theta_class", t);
      expect_trajectory(params.class_optimizer()->momentum_buffer().to_float_vector(),
                        bf_c.as<float>() + t * C, C, scale_bc, "buf_class", t);
    }
    if (c.learn_inst_parameters) {
      expect_trajectory(params.theta_inst().to_float_vector(), th_i.as<float>() + t * N, N, scale_i,
                        "theta_inst", t);
      expect_trajectory(params.inst_optimizer()->momentum_buffer().to_float_vector(),
                        bf_i.as<float>() + t * N, N, scale_bi, "buf_inst", t);
    }
    if (t == 0 && c.learn_inst_parameters && c.init_inst_param == 0.001 && !c.skip_clamp_data_param) {
      for (float v : params.theta_inst().to_float_vector())
        ASSERT_EQ(v, dp::train::data_param_clamp_lo()) << "every θ_inst clamps to log(0.05) after step 1";
    }
  }
  if (c.learn_inst_parameters && c.wd_inst_param == 0) {
    EXPECT_EQ(absent_rows_seen, T / 5);
  }
}

INSTANTIATE_TEST_SUITE_P(DataParams, Golden,
                         ::testing::Values("joint_clamp", "joint_nowd", "joint_noclamp", "inst_only",
                                           "inst_only_wd", "inst_highlr", "class_only", "class_only_wd"));

}  // namespace
