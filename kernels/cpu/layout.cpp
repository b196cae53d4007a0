// CPU memory-format conversion (contract: kernels/layout.h): a plain transpose of each image's
// [C, H·W] matrix, by element size (the values are moved, not interpreted), then a cast.
#include <cstring>

#include "engine/thread_pool.h"
#include "kernels/elementwise.h"
#include "kernels/layout.h"

namespace dp::kernels::cpu {

namespace {

// Each image of x is an [a, b] matrix; y gets its transpose [b, a].
template <class Bits>
void transpose_images(const Bits* x, Bits* y, int64_t n, int64_t a, int64_t b) {
  constexpr int64_t kTile = 32;
  parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t img = lo; img < hi; ++img) {
      const Bits* xs = x + img * a * b;
      Bits* ys = y + img * a * b;
      for (int64_t i0 = 0; i0 < a; i0 += kTile)
        for (int64_t j0 = 0; j0 < b; j0 += kTile)
          for (int64_t i = i0; i < std::min(a, i0 + kTile); ++i)
            for (int64_t j = j0; j < std::min(b, j0 + kTile); ++j) ys[j * a + i] = xs[i * b + j];
    }
  });
}

void transpose_by_size(const void* x, void* y, size_t elem, int64_t n, int64_t a, int64_t b) {
  switch (elem) {
    case 1: return transpose_images(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), n, a, b);
    case 2: return transpose_images(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), n, a, b);
    case 4: return transpose_images(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(y), n, a, b);
    case 8: return transpose_images(static_cast<const uint64_t*>(x), static_cast<uint64_t*>(y), n, a, b);
    default: DP_THROW("convert_layout: unsupported element size " + std::to_string(elem), "");
  }
}

}  // namespace

void convert_layout(const Tensor& x, Tensor& y) {
  DP_CHECK(x.shape() == y.shape(), "convert_layout: shapes differ (" + x.str() + ", " + y.str() + ")", "");
  if (x.memory_format() == y.memory_format()) {
    if (x.dtype() == y.dtype()) std::memcpy(y.raw_data(), x.raw_data(), x.nbytes());
    else cast(x, y);
    return;
  }
  Tensor same_type = x;
  if (x.dtype() != y.dtype()) {
    same_type = Tensor::empty_like(x, y.dtype());
    cast(x, same_type);
  }
  const Shape& s = x.shape();
  const int64_t c = s[1], hw = s[2] * s[3];
  const bool to_nhwc = y.is_channels_last();
  transpose_by_size(same_type.raw_data(), y.raw_data(), dtype_size(y.dtype()), s[0], to_nhwc ? c : hw,
                    to_nhwc ? hw : c);
}

}  // namespace dp::kernels::cpu
