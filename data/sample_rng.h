// Randomness for the data pipeline: every draw is a pure function of
// (seed, purpose, epoch, index, position), so augmentation does not depend on thread count,
// rank count, batch order or resume point. Built on the engine's Philox4x32-10 (engine/rng.h).
#pragma once
#include <cstdint>

#include "engine/rng.h"

namespace dp::data {

// Purposes get distinct streams so that e.g. the epoch shuffle and a sample's augmentation never
// share random numbers even when (epoch, index) coincide.
enum class RngStream : uint32_t { kAugment = 1, kShuffle = 2, kLabelNoise = 3, kSynthetic = 4 };

// dp::Rng over stream `index`, under a key derived from (seed, purpose, epoch) by one Philox block,
// which keeps the full 64 bits for the index and any epoch count without collisions.
class SampleRng : public dp::Rng {
 public:
  SampleRng(uint64_t seed, RngStream purpose, uint64_t epoch, uint64_t index)
      : dp::Rng(derive_key(seed, purpose, epoch), index) {}
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static uint64_t derive_key(uint64_t seed, RngStream purpose, uint64_t epoch) {
    const auto block = dp::philox_block(seed, (uint64_t{static_cast<uint32_t>(purpose)} << 48) ^ epoch,
                                        0xD47A0000ull);
    return (uint64_t{block.v[0]} << 32) | block.v[1];
  }
};

}  // namespace dp::data
