#include "app/inspect/png_file.h"

#include <png.h>

#include <cstring>

#include "engine/error.h"

namespace dp::app::inspect {

namespace {
// libpng's simplified-API description of an 8-bit BGR image.
png_image bgr_image(int width, int height) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_BGR;
  return image;
}
}  // namespace

void write_png_bgr(const std::string& path, const uint8_t* bgr, int width, int height, size_t row_stride) {
  png_image image = bgr_image(width, height);
  const int ok = png_image_write_to_file(&image, path.c_str(), 0, bgr, static_cast<png_int_32>(row_stride), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  DP_CHECK(ok != 0, "cannot write " + path + ": " + message, "check that the folder exists and is writable");
}

std::vector<uint8_t> encode_png_bgr(const uint8_t* bgr, int width, int height, size_t row_stride) {
  png_image image = bgr_image(width, height);
  png_alloc_size_t size = 0;  // first call: the size; second: the bytes
  int ok = png_image_write_to_memory(&image, nullptr, &size, 0, bgr, static_cast<png_int_32>(row_stride), nullptr);
  std::vector<uint8_t> out(size);
  if (ok) ok = png_image_write_to_memory(&image, out.data(), &size, 0, bgr, static_cast<png_int_32>(row_stride), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  DP_CHECK(ok != 0, "PNG encoding failed: " + message, "report this as a bug");
  out.resize(size);
  return out;
}

std::vector<uint8_t> read_png_bgr(const std::string& path, int& width, int& height) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  DP_CHECK(png_image_begin_read_from_file(&image, path.c_str()) != 0, "cannot read " + path + ": " + image.message,
           "is it a PNG file?");
  image.format = PNG_FORMAT_BGR;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  const int ok = png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr);
  const std::string message = image.message;
  width = static_cast<int>(image.width);
  height = static_cast<int>(image.height);
  png_image_free(&image);
  DP_CHECK(ok != 0, "cannot decode " + path + ": " + message, "is the file complete?");
  return pixels;
}

}  // namespace dp::app::inspect
