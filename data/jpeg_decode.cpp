#include "data/jpeg_decode.h"

#include <turbojpeg.h>

#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "data/image_ops.h"
#include "data/jpeg_markers.h"
#include "engine/error.h"

namespace dp::data {

namespace {

// One TurboJPEG handle per thread: handles are not thread-safe and cheap to keep.
struct DecoderHolder {
  tjhandle handle = nullptr;
  ~DecoderHolder() {
    if (handle) tjDestroy(handle);
  }
};
thread_local DecoderHolder decoder_holder;

tjhandle thread_decoder() {
  if (!decoder_holder.handle) decoder_holder.handle = tjInitDecompress();
  DP_CHECK(decoder_holder.handle != nullptr,
           std::string("cannot create a TurboJPEG decoder: ") + tjGetErrorStr2(nullptr), "out of memory?");
  return decoder_holder.handle;
}

// TurboJPEG 2.1 leaves a handle in a sticky error state after some fatal errors (every later
// header read then repeats the old message), so a handle that failed is replaced.
void discard_thread_decoder() {
  if (decoder_holder.handle) tjDestroy(decoder_holder.handle);
  decoder_holder.handle = nullptr;
}

// TurboJPEG 2.1 refuses sampling layouts outside its TJSAMP_* list (e.g. 4:1:0) although
// libjpeg decodes them; such files go through OpenCV's libjpeg path instead.
bool is_unusual_sampling(const std::string& message) {
  return message.find("Could not determine subsampling") != std::string::npos;
}

std::string hint_for(const std::string& message) {
  if (message.find("precision") != std::string::npos || message.find("SOF type") != std::string::npos)
    return "12-bit, 16-bit and lossless JPEGs are not supported: re-encode the image as 8-bit "
           "baseline or progressive JPEG";
  if (message.find("rithmetic") != std::string::npos)
    return "this libjpeg-turbo was built without arithmetic decoding: re-encode the image";
  if (message.find("Premature end") != std::string::npos ||
      message.find("premature end") != std::string::npos)
    return "the file is truncated: re-download or re-extract it (or use the loader's skip policy)";
  return "the file is corrupt or not a JPEG: re-download it, or use the loader's skip policy";
}

bool is_truncation_warning(const std::string& message) {
  return message.find("remature end") != std::string::npos;
}

Image decode_with_opencv(const uint8_t* data, size_t size, const std::string& source) {
  DP_CHECK(size > 0, "image file '" + source + "' is empty", "re-download or re-extract it");
  const cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t*>(data));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    DP_THROW("cannot decode image '" + source + "': " + e.what(),
             "the file is corrupt or in an unsupported format");
  }
  DP_CHECK(!bgr.empty(), "cannot decode image '" + source + "' (OpenCV could not read it)",
           "supported: JPEG, PNG, BMP, PPM/PGM, WebP; the file may be corrupt");
  Image image(bgr.rows, bgr.cols, 3);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, image.pixels.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return image;
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

JpegHeader read_jpeg_header(const uint8_t* data, size_t size, const std::string& source) {
  DP_CHECK(is_jpeg(data, size), "'" + source + "' is not a JPEG file (no SOI marker)",
           "the file is corrupt or has the wrong extension");
  tjhandle handle = thread_decoder();
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle, data, static_cast<unsigned long>(size), &width, &height,
                          &subsampling, &colorspace) != 0) {
    const std::string message = tjGetErrorStr2(handle);
    discard_thread_decoder();
    // The size was read before TurboJPEG gave up on the sampling layout: usable (see above).
    if (is_unusual_sampling(message) && width > 0 && height > 0) {
      JpegHeader header;
      header.width = width;
      header.height = height;
      header.subsampling = -1;
      header.colorspace = -1;
      header.exif_orientation = scan_jpeg_markers(data, size).exif_orientation;
      return header;
    }
    DP_THROW("cannot read the JPEG header of '" + source + "': " + message, hint_for(message));
  }
  JpegHeader header;
  header.width = width;
  header.height = height;
  header.subsampling = subsampling;
  header.colorspace = colorspace;
  header.exif_orientation = scan_jpeg_markers(data, size).exif_orientation;
  return header;
}

void choose_dct_scale(int64_t width, int64_t height, int64_t min_width, int64_t min_height,
                      int& num, int& denom) {
  num = denom = 1;
  if (min_width <= 0 && min_height <= 0) return;
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  double best = 1.0;
  for (int i = 0; i < count; ++i) {
    const tjscalingfactor f = factors[i];
    // Only real reductions (<= 1/2): smaller gains are not worth the scaled IDCT's softer output.
    if (2 * f.num > f.denom) continue;
    const int64_t w = TJSCALED(width, f), h = TJSCALED(height, f);
    const double ratio = static_cast<double>(f.num) / f.denom;
    if (w >= min_width && h >= min_height && ratio < best) {
      best = ratio;
      num = f.num;
      denom = f.denom;
    }
  }
}

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                    const std::string& source) {
  const JpegHeader header = read_jpeg_header(data, size, source);
  const int orientation = options.apply_exif_orientation ? header.exif_orientation : 0;
  const bool swap = orientation >= 5;

  Decoded result;
  if (header.subsampling < 0) {  // layout TurboJPEG refuses: libjpeg via OpenCV, full size
    Image image = decode_with_opencv(data, size, source);
    result.image = orientation > 1 ? apply_exif_orientation(image, orientation) : std::move(image);
    result.full_width = result.image.width;
    result.full_height = result.image.height;
    return result;
  }
  result.full_width = swap ? header.height : header.width;
  result.full_height = swap ? header.width : header.height;
  // The minimum size is upright; the decoder works in stored orientation.
  choose_dct_scale(header.width, header.height, swap ? options.min_height : options.min_width,
                   swap ? options.min_width : options.min_height, result.scale_num,
                   result.scale_denom);
  const tjscalingfactor factor{result.scale_num, result.scale_denom};
  const int64_t width = TJSCALED(header.width, factor), height = TJSCALED(header.height, factor);
  DP_CHECK(width * height <= options.max_pixels,
           "JPEG '" + source + "' is " + std::to_string(header.width) + "x" +
               std::to_string(header.height) + " pixels, too large to decode",
           "raise DecodeOptions::max_pixels (" + std::to_string(options.max_pixels) +
               ") if the image is genuine; it guards against decompression bombs");

  const bool cmyk = header.colorspace == TJCS_CMYK || header.colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<uint8_t> cmyk_buffer;
  Image rgb;
  uint8_t* target;
  if (cmyk) {
    cmyk_buffer.resize(static_cast<size_t>(width * height * 4));
    target = cmyk_buffer.data();
  } else {
    rgb = Image(height, width, 3);
    target = rgb.pixels.data();
  }
  tjhandle handle = thread_decoder();
  // Accurate integer IDCT and fancy upsampling: TurboJPEG's defaults, and what PIL uses.
  const int status = tjDecompress2(handle, data, static_cast<unsigned long>(size), target,
                                   static_cast<int>(width), static_cast<int>(width * channels),
                                   static_cast<int>(height), cmyk ? TJPF_CMYK : TJPF_RGB, 0);
  if (status != 0) {
    const std::string message = tjGetErrorStr2(handle);
    const bool warning = tjGetErrorCode(handle) == TJERR_WARNING;
    if (!warning) discard_thread_decoder();
    const bool fail = !warning || options.warnings == JpegWarnings::kFailOnAny ||
                      (options.warnings == JpegWarnings::kFailOnTruncation &&
                       is_truncation_warning(message));
    if (fail)
      DP_THROW("cannot decode JPEG '" + source + "': " + message, hint_for(message));
  }
  if (cmyk) {
    // libjpeg-turbo returns the stored values; Adobe files (Photoshop, all CMYK JPEGs seen in
    // practice) store them inverted. Without an Adobe segment, assume plain CMYK.
    const JpegMarkers markers = scan_jpeg_markers(data, size);
    rgb = cmyk_to_rgb(cmyk_buffer.data(), height, width, markers.has_adobe);
  }
  result.image = orientation > 1 ? apply_exif_orientation(rgb, orientation) : std::move(rgb);
  return result;
}

Decoded decode_image(const uint8_t* data, size_t size, const DecodeOptions& options,
                     const std::string& source) {
  if (is_jpeg(data, size)) return decode_jpeg(data, size, options, source);
  Decoded result;
  result.image = decode_with_opencv(data, size, source);
  result.full_width = result.image.width;
  result.full_height = result.image.height;
  return result;
}

}  // namespace dp::data
