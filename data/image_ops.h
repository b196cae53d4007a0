// Pixel-level operations on uint8 HWC images that the decoder and the transforms share.
#pragma once
#include <cstdint>

#include "data/image.h"

namespace dp::data {

// Rotates/flips so that an image stored with EXIF orientation 1..8 displays upright
// (2: mirror, 3: rotate 180, 4: flip vertical, 5: transpose, 6: rotate 90 clockwise,
// 7: transverse, 8: rotate 90 counter-clockwise). 0 and 1 leave the image as it is.
Image apply_exif_orientation(const Image& image, int orientation);

// Mirrors left-right in place.
void flip_horizontal(Image& image);

// The region [top, top+height) x [left, left+width), which may extend past the image: pixels
// outside it are zero (torchvision's zero padding for RandomCrop/CenterCrop).
Image crop_with_zero_pad(const Image& image, int64_t top, int64_t left, int64_t height,
                         int64_t width);

// Adobe CMYK as libjpeg-turbo delivers it (inverted: 255 = no ink) or plain CMYK -> RGB,
// using PIL's formula R = (255 - C) * (255 - K) / 255 on the uninverted values.
Image cmyk_to_rgb(const uint8_t* cmyk, int64_t height, int64_t width, bool adobe_inverted);

}  // namespace dp::data
