// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011), identical on CPU and GPU.
//
// A draw is a pure function of (seed, stream, index): no state to split across threads,
// devices or resumes. Consumers pick a `stream` per purpose (e.g. dropout layer id, or
// (epoch, sample index) for augmentation) and an element index within it.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DP_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DP_HOST_DEVICE inline
#endif

namespace dp {

struct Philox4x32 {
  uint32_t v[4];
};

DP_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter (c0..c3) with key (k0, k1).
DP_HOST_DEVICE Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                        uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Four 32-bit words for block `block` of stream `stream` under `seed`.
DP_HOST_DEVICE Philox4x32 philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                       static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The index-th 32-bit word of a stream.
DP_HOST_DEVICE uint32_t philox_u32(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox_block(seed, stream, index >> 2).v[index & 3];
}

// Uniform float in [0, 1) with 24 random bits (exactly representable, never 1.0).
DP_HOST_DEVICE float u32_to_uniform(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

DP_HOST_DEVICE float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return u32_to_uniform(philox_u32(seed, stream, index));
}

// Sequential host-side generator over one stream, for initialisation and sampling.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  uint32_t next_u32() { return philox_u32(seed_, stream_, counter_++); }
  uint64_t next_u64() {
    uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller (the cosine branch only, so each call uses two draws).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Uniform integer in [0, n) without modulo bias.
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64(); while (x >= limit);
    return x % n;
  }
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; }

 private:
  uint64_t seed_, stream_, counter_ = 0;
};

}  // namespace dp
