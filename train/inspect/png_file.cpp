#include "train/inspect/png_file.h"

#include <png.h>

#include <cstring>

#include "engine/error.h"

namespace dp::inspect {

void write_png_bgr(const std::string& path, const uint8_t* bgr, int width, int height, size_t row_stride) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_BGR;
  const int ok = png_image_write_to_file(&image, path.c_str(), 0, bgr, static_cast<png_int_32>(row_stride), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  DP_CHECK(ok != 0, "cannot write " + path + ": " + message, "check that the folder exists and is writable");
}

}  // namespace dp::inspect
