#include "layers/init.h"

#include <cmath>
#include <vector>

#include "engine/thread_pool.h"
#include "kernels/ops.h"

namespace dp::layers::init {

namespace {
int64_t receptive_field(const Tensor& w) {
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}

// Fills a host float64 buffer in parallel and converts once into the tensor's dtype and
// device. Element i consumes Philox words [i·words, (i+1)·words) of the stream, so the values
// are those of a sequential loop whatever the thread count, and `rng` ends where that loop would.
template <class F>
void fill_host(Tensor& t, Rng& rng, uint64_t words_per_element, F&& draw) {
  const int64_t n = t.numel();
  const uint64_t base = rng.counter();
  std::vector<double> host(static_cast<size_t>(n));
  parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    Rng local = rng;
    local.set_counter(base + static_cast<uint64_t>(begin) * words_per_element);
    for (int64_t i = begin; i < end; ++i) host[static_cast<size_t>(i)] = draw(local);
  });
  rng.set_counter(base + static_cast<uint64_t>(n) * words_per_element);
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
  fill_host(t, rng, 2, [&](Rng& r) { return r.uniform(lo, hi); });  // one u64 = two words
}

void normal_(Tensor& t, double mean, double stddev, Rng& rng) {
  fill_host(t, rng, 4, [&](Rng& r) { return mean + stddev * r.normal(); });  // two uniforms
}

void constant_(Tensor& t, double value) { kernels::fill_(t, value); }

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

}  // namespace dp::layers::init
