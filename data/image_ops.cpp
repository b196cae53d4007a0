#include "data/image_ops.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace dp::data {

Image apply_exif_orientation(const Image& image, int orientation) {
  if (orientation <= 1 || orientation > 8) return image;
  const bool swap = orientation >= 5;
  Image out(swap ? image.width : image.height, swap ? image.height : image.width, image.channels);
  const int64_t c = image.channels;
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      int64_t sy = 0, sx = 0;  // where output (y, x) comes from in the stored image
      switch (orientation) {
        case 2: sy = y; sx = image.width - 1 - x; break;
        case 3: sy = image.height - 1 - y; sx = image.width - 1 - x; break;
        case 4: sy = image.height - 1 - y; sx = x; break;
        case 5: sy = x; sx = y; break;
        case 6: sy = image.height - 1 - x; sx = y; break;
        case 7: sy = image.height - 1 - x; sx = image.width - 1 - y; break;
        case 8: sy = x; sx = image.width - 1 - y; break;
      }
      std::memcpy(out.row(y) + x * c, image.row(sy) + sx * c, static_cast<size_t>(c));
    }
  }
  return out;
}

void flip_horizontal(Image& image) {
  const int64_t c = image.channels;
  for (int64_t y = 0; y < image.height; ++y) {
    uint8_t* row = image.row(y);
    for (int64_t a = 0, b = image.width - 1; a < b; ++a, --b)
      for (int64_t k = 0; k < c; ++k) std::swap(row[a * c + k], row[b * c + k]);
  }
}

Image crop_with_zero_pad(const Image& image, int64_t top, int64_t left, int64_t height,
                         int64_t width) {
  DP_CHECK(height > 0 && width > 0, "crop of size " + std::to_string(height) + "x" +
                                        std::to_string(width) + " is empty",
           "crop sizes must be positive");
  Image out(height, width, image.channels);  // zero-initialised
  const int64_t y0 = std::max<int64_t>(0, top), y1 = std::min(image.height, top + height);
  const int64_t x0 = std::max<int64_t>(0, left), x1 = std::min(image.width, left + width);
  const int64_t c = image.channels;
  for (int64_t y = y0; y < y1 && x0 < x1; ++y)
    std::memcpy(out.row(y - top) + (x0 - left) * c, image.row(y) + x0 * c,
                static_cast<size_t>((x1 - x0) * c));
  return out;
}

Image cmyk_to_rgb(const uint8_t* cmyk, int64_t height, int64_t width, bool adobe_inverted) {
  Image out(height, width, 3);
  uint8_t* rgb = out.pixels.data();
  for (int64_t p = 0; p < height * width; ++p, cmyk += 4, rgb += 3) {
    // "White fraction" per ink: 255 - ink, which Adobe files store directly.
    const int kw = adobe_inverted ? cmyk[3] : 255 - cmyk[3];
    for (int ch = 0; ch < 3; ++ch) {
      const int w = adobe_inverted ? cmyk[ch] : 255 - cmyk[ch];
      rgb[ch] = static_cast<uint8_t>((w * kw + 127) / 255);
    }
  }
  return out;
}

}  // namespace dp::data
