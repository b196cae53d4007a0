// Bit-exact reproduction of NumPy's legacy global generator (np.random.seed / np.random.permutation).
// The reference draws its label-noise permutation with it, so the noisy subset of a run is only
// comparable with the reference if we produce the very same permutation.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace dp::data {

// MT19937 as NumPy's legacy RandomState uses it. np.random.seed(int) seeds with init_genrand
// (Knuth's linear recurrence on the single 32-bit seed), NOT init_by_array; verified against
// numpy 1.24: RandomState(1).randint(0, 2**32) gives 1791095845, the first init_genrand(1) draw.
class NumpyLegacyMT19937 {
 public:
  explicit NumpyLegacyMT19937(uint32_t seed);
  uint32_t next_u32();
  // NumPy's random_interval(max): uniform integer in [0, max] by masking to the next power of two
  // minus one and rejecting; 32-bit draws while max fits in 32 bits (64-bit draws otherwise).
  uint64_t interval(uint64_t max);

 private:
  void twist();
  std::array<uint32_t, 624> state_{};
  int position_ = 624;
};

// np.random.seed(seed); np.random.permutation(n): arange(n) shuffled by NumPy's legacy shuffle
// (Fisher-Yates from the last element down, j = interval(i)).
std::vector<int64_t> numpy_legacy_permutation(uint32_t seed, int64_t n);

}  // namespace dp::data
