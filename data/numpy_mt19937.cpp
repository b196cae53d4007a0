#include "data/numpy_mt19937.h"

#include <cstddef>
#include <utility>

namespace dp::data {

NumpyLegacyMT19937::NumpyLegacyMT19937(uint32_t seed) {
  state_[0] = seed;
  for (uint32_t i = 1; i < 624; ++i)
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + i;
  position_ = 624;
}

void NumpyLegacyMT19937::twist() {
  constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrix = 0x9908b0dfu;
  for (int i = 0; i < 624; ++i) {
    uint32_t y = (state_[i] & kUpper) | (state_[(i + 1) % 624] & kLower);
    state_[i] = state_[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
  }
  position_ = 0;
}

uint32_t NumpyLegacyMT19937::next_u32() {
  if (position_ >= 624) twist();
  uint32_t y = state_[position_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

uint64_t NumpyLegacyMT19937::interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift = 1; shift <= 32; shift <<= 1) mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffull) {
    while ((value = (next_u32() & mask)) > max) {
    }
  } else {
    // NumPy's 64-bit draw for MT19937: high word first, then low word.
    do {
      uint64_t hi = next_u32();
      uint64_t lo = next_u32();
      value = ((hi << 32) | lo) & mask;
    } while (value > max);
  }
  return value;
}

std::vector<int64_t> numpy_legacy_permutation(uint32_t seed, int64_t n) {
  std::vector<int64_t> values(static_cast<size_t>(n < 0 ? 0 : n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = i;
  NumpyLegacyMT19937 rng(seed);
  for (int64_t i = n - 1; i >= 1; --i) {
    auto j = static_cast<int64_t>(rng.interval(static_cast<uint64_t>(i)));
    std::swap(values[static_cast<size_t>(i)], values[static_cast<size_t>(j)]);
  }
  return values;
}

}  // namespace dp::data
