// JPEG decoding with libjpeg-turbo (SIMD) into RGB uint8 HWC, plus a general entry point that
// hands other formats (PNG, BMP, PPM, WebP) to OpenCV. Headers and the list of DCT scale factors
// come from the TurboJPEG API; pixels from libjpeg-turbo's libjpeg API, which can also decode
// just a window of the image (jpeg_crop_scanline / jpeg_skip_scanlines) at a reduced DCT scale.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace dp::data {

// A rectangle in upright (after orientation) full-size pixel coordinates.
struct PixelRect {
  int64_t left = 0, top = 0, width = 0, height = 0;
};

// What a libjpeg warning (a recoverable problem: the decoder produced an image anyway) means.
enum class JpegWarnings {
  kFailOnTruncation,  // default: truncated data ("Premature end of JPEG file", "premature end of
                      // data segment") is an error; benign warnings (extraneous bytes) are not
  kFailOnAny,         // any warning is an error
  kIgnore,            // keep whatever the decoder produced
};

struct DecodeOptions {
  bool apply_exif_orientation = false;  // torchvision/PIL's default is not to rotate
  JpegWarnings warnings = JpegWarnings::kFailOnTruncation;
  // DCT-domain downscaling: decode at the smallest TurboJPEG scale factor s <= 1/2 for which the
  // scaled image is still at least min_width x min_height (given in upright coordinates, i.e.
  // after orientation); full size when no such factor exists. 0 = always full size.
  int64_t min_width = 0;
  int64_t min_height = 0;
  // Decode only (a superset of) this window; width 0 = the whole image. The decoder widens it to
  // iMCU boundaries plus a small margin, so the pixels inside are exactly those of a full decode.
  // Rows below the window are still entropy-decoded unless warnings == kIgnore, so truncated or
  // corrupt data is detected exactly as with a full decode.
  PixelRect region;
  // Decompression-bomb guard on the decoded (possibly DCT-reduced) size, and on the full size
  // for progressive files (their coefficients are held at full size): 2^28 pixels is 768 MB of
  // RGB, far beyond any training image.
  int64_t max_pixels = int64_t{1} << 28;
};

struct JpegHeader {
  int64_t width = 0;   // as stored (before EXIF orientation)
  int64_t height = 0;
  int subsampling = 0;  // TJSAMP_*
  int colorspace = 0;   // TJCS_*
  int exif_orientation = 0;
};

struct Decoded {
  Image image;                 // RGB, HWC: the whole (scaled) image, or the decoded window
  int64_t full_width = 0;      // upright size at scale 1, for mapping crops into `image`
  int64_t full_height = 0;
  int scale_num = 1, scale_denom = 1;  // scaled size = ceil(full * num / denom)
  int64_t scaled_width = 0;    // upright size of the whole image at the decoded scale
  int64_t scaled_height = 0;
  int64_t offset_x = 0;        // position of image's top-left pixel in the scaled whole image
  int64_t offset_y = 0;        // (0, 0 unless a region was decoded)
};

bool is_jpeg(const uint8_t* data, size_t size);

// Throws dp::Error naming `source` for anything that is not a decodable 8-bit JPEG.
JpegHeader read_jpeg_header(const uint8_t* data, size_t size, const std::string& source);

// The TurboJPEG scale factor num/denom (<= 1/2) to decode a width x height image at so that it
// stays >= min_width x min_height, or 1/1 when none qualifies.
void choose_dct_scale(int64_t width, int64_t height, int64_t min_width, int64_t min_height,
                      int& num, int& denom);

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                    const std::string& source);
// The same, reusing `out`'s pixel storage (a per-thread Decoded avoids per-sample allocations).
// `header` must be read_jpeg_header's result for these bytes.
void decode_jpeg_into(const uint8_t* data, size_t size, const JpegHeader& header,
                      const DecodeOptions& options, const std::string& source, Decoded& out);

// JPEG via libjpeg-turbo, anything else via OpenCV (which applies no orientation here either).
Decoded decode_image(const uint8_t* data, size_t size, const DecodeOptions& options,
                     const std::string& source);

}  // namespace dp::data
