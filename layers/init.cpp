#include "layers/init.h"

#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace dp::nn::init {

namespace {
int64_t receptive_field(const Tensor& w) {
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}

// Fills a host float64 buffer and converts once into the tensor's dtype and device.
template <class F>
void fill_host(Tensor& t, F&& draw) {
  std::vector<double> host(static_cast<size_t>(t.numel()));
  for (double& v : host) v = draw();
  Tensor src = Tensor::from_vector(host, t.shape()).to(t.dtype()).to(t.device());
  t.copy_from(src);
}
}  // namespace

int64_t fan_in(const Tensor& w) {
  DP_CHECK(w.dim() >= 2, "fan_in needs a weight with at least 2 dimensions, got " + w.str(), "");
  return w.size(1) * receptive_field(w);
}

int64_t fan_out(const Tensor& w) {
  DP_CHECK(w.dim() >= 2, "fan_out needs a weight with at least 2 dimensions, got " + w.str(), "");
  return w.size(0) * receptive_field(w);
}

void uniform_(Tensor& t, double lo, double hi, Rng& rng) {
  fill_host(t, [&] { return rng.uniform(lo, hi); });
}

void normal_(Tensor& t, double mean, double stddev, Rng& rng) {
  fill_host(t, [&] { return mean + stddev * rng.normal(); });
}

void constant_(Tensor& t, double value) { ops::fill_(t, value); }

void default_weight_(Tensor& w, Rng& rng) {
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(w)));
  uniform_(w, -bound, bound, rng);
}

void default_bias_(Tensor& b, int64_t fan_in_of_weight, Rng& rng) {
  double bound = fan_in_of_weight > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in_of_weight)) : 0.0;
  uniform_(b, -bound, bound, rng);
}

void kaiming_normal_fan_out_relu_(Tensor& w, Rng& rng) {
  double stddev = std::sqrt(2.0 / static_cast<double>(fan_out(w)));
  normal_(w, 0.0, stddev, rng);
}

}  // namespace dp::nn::init
