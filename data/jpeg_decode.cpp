#include "data/jpeg_decode.h"

// jpeglib.h needs size_t and FILE declared first.
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
#include <turbojpeg.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <opencv2/core.hpp>
#ifndef DP_NO_IMAGE_CODECS  // the GPU kit's build (data/meson.build)
#include <opencv2/imgcodecs.hpp>
#endif
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

// TurboJPEG 2.1's header reader refuses sampling layouts outside its TJSAMP_* list (e.g. 4:1:0)
// although libjpeg decodes them; for such files the header keeps the size it read and the
// pixels come from the libjpeg API as for any other JPEG.
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
#ifdef DP_NO_IMAGE_CODECS
  DP_THROW("cannot decode image '" + source + "': it is not a JPEG, and this build (the GPU kit) decodes JPEG only",
           "convert the images to JPEG, or use a full build of dp-engine");
#else
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
#endif
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
  // TurboJPEG reports success without a size for a stream of tables only (no SOF): every later
  // step divides by these, so they are checked here, where the header is read.
  DP_CHECK(width >= 1 && height >= 1 && width <= 65535 && height <= 65535,
           "the JPEG header of '" + source + "' gives no usable image size (" + std::to_string(width) + "x" +
               std::to_string(height) + "; a missing SOF marker?)",
           "the file is corrupt: replace or delete it (data.bad_samples = \"skip\" skips such files)");
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

namespace {

// ---- libjpeg API: decoding (optionally a window, at a DCT scale) with errors as dp::Error ----

// libjpeg reports fatal errors through error_exit (which must not return) and warnings through
// emit_message(-1): both longjmp back to decode_with_libjpeg, which turns them into dp::Error.
struct LibjpegErrorManager {
  jpeg_error_mgr pub;  // first, so that cinfo->err casts to this struct
  std::jmp_buf jump;
  JpegWarnings policy = JpegWarnings::kFailOnTruncation;
  char message[JMSG_LENGTH_MAX] = {};  // the error, or the warning the policy made fatal
};

void libjpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<LibjpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void libjpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<LibjpegErrorManager*>(cinfo->err);
  ++cinfo->err->num_warnings;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  const bool fail = err->policy == JpegWarnings::kFailOnAny ||
                    (err->policy == JpegWarnings::kFailOnTruncation && is_truncation_warning(text));
  if (!fail) return;
  std::memcpy(err->message, text, sizeof(text));
  std::longjmp(err->jump, 1);
}

// A fresh decompressor per image: a reused one would keep the previous file's Huffman and
// quantisation tables, which a file without its own (e.g. MJPEG frames) would then decode with.
struct LibjpegHolder {
  jpeg_decompress_struct cinfo{};
  LibjpegErrorManager err;
  bool created = false;
  LibjpegHolder() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = libjpeg_error_exit;
    err.pub.emit_message = libjpeg_emit_message;
    if (setjmp(err.jump)) return;  // out of memory: created stays false
    jpeg_create_decompress(&cinfo);
    created = true;
  }
  ~LibjpegHolder() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// Everything decode_with_libjpeg reads and writes. Only trivially destructible state lives in
// the frame that calls setjmp; the pixel buffers are owned by the caller.
struct LibjpegJob {
  const uint8_t* data = nullptr;
  size_t size = 0;
  int scale_num = 1, scale_denom = 1;
  bool has_region = false;
  int64_t rx0 = 0, ry0 = 0, rx1 = 0, ry1 = 0;  // stored full-size window, half-open
  bool read_to_end = true;                     // entropy-decode the rows below the window too
  std::vector<uint8_t>* last_row = nullptr;    // scratch row for read_to_end
  std::vector<uint8_t>* rgb = nullptr;         // receives RGB pixels
  std::vector<uint8_t>* cmyk = nullptr;        // receives CMYK pixels (CMYK/YCCK files)
  // Outputs (stored orientation, decoded scale).
  int64_t scaled_w = 0, scaled_h = 0;  // whole image
  int64_t x0 = 0, y0 = 0, w = 0, h = 0;
  bool is_cmyk = false, adobe = false;
  int64_t max_pixels = 0;    // progressive files: limit on the full (coefficient) size
  bool too_large = false;    // set (with a false return) when a progressive file exceeds it
};

// Pixels that fancy upsampling at a cropped edge may compute differently from a full decode
// (the edge is treated as an image border); the window is widened by this much.
constexpr int64_t kWindowMargin = 4;

// Returns true on success; on failure err.message holds libjpeg's text.
bool decode_with_libjpeg(LibjpegHolder& holder, LibjpegJob& job) {
  jpeg_decompress_struct* cinfo = &holder.cinfo;
  if (setjmp(holder.err.jump)) {
    jpeg_abort_decompress(cinfo);
    return false;
  }
  jpeg_mem_src(cinfo, job.data, static_cast<unsigned long>(job.size));
  jpeg_read_header(cinfo, TRUE);
  // A progressive (multi-scan) image keeps all its DCT coefficients in memory at full size,
  // whatever the output scale: the decompression-bomb guard applies to the full size.
  if (jpeg_has_multiple_scans(cinfo) &&
      int64_t{cinfo->image_width} * int64_t{cinfo->image_height} > job.max_pixels) {
    job.too_large = true;
    jpeg_abort_decompress(cinfo);
    return false;
  }
  job.is_cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  job.adobe = cinfo->saw_Adobe_marker;
  cinfo->out_color_space = job.is_cmyk ? JCS_CMYK : JCS_RGB;  // greyscale expands to RGB
  // Accurate integer IDCT and fancy upsampling: libjpeg's defaults, and what PIL uses.
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->do_fancy_upsampling = TRUE;
  cinfo->scale_num = static_cast<unsigned int>(job.scale_num);
  cinfo->scale_denom = static_cast<unsigned int>(job.scale_denom);
  jpeg_start_decompress(cinfo);
  const int64_t sw = cinfo->output_width, sh = cinfo->output_height;
  job.scaled_w = sw;
  job.scaled_h = sh;
  int64_t x0 = 0, x1 = sw, y0 = 0, y1 = sh;
  if (job.has_region) {
    // Window in decoded pixels: scale by decoded / full (as the transforms map crops), round
    // outwards, add the margin, clamp.
    const int64_t fw = cinfo->image_width, fh = cinfo->image_height;
    int64_t mx = kWindowMargin, my = kWindowMargin;
    if (cinfo->progressive_mode) {
      // Block smoothing of incompletely coded progressive images reads neighbouring blocks'
      // coefficients (up to two blocks away): keep three iMCUs of context on every side.
      mx = 3 * int64_t{cinfo->max_h_samp_factor} * cinfo->min_DCT_scaled_size;
      my = 3 * int64_t{cinfo->max_v_samp_factor} * cinfo->min_DCT_scaled_size;
    }
    x0 = std::max<int64_t>(0, job.rx0 * sw / fw - mx);
    x1 = std::min<int64_t>(sw, (job.rx1 * sw + fw - 1) / fw + mx);
    y0 = std::max<int64_t>(0, job.ry0 * sh / fh - my);
    y1 = std::min<int64_t>(sh, (job.ry1 * sh + fh - 1) / fh + my);
    if (x0 > 0 || x1 < sw) {
      JDIMENSION xoffset = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
      jpeg_crop_scanline(cinfo, &xoffset, &width);  // moves xoffset left to an iMCU boundary
      x0 = xoffset;
      x1 = x0 + width;
    }
  }
  const int64_t w = cinfo->output_width, h = y1 - y0;
  const int64_t channels = cinfo->output_components;
  std::vector<uint8_t>& buffer = job.is_cmyk ? *job.cmyk : *job.rgb;
  buffer.resize(static_cast<size_t>(w * h * channels));
  if (y0 > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(y0));
  JSAMPROW rows[16];
  int64_t done = 0;
  while (done < h) {
    const int64_t n = std::min<int64_t>(16, h - done);
    for (int64_t i = 0; i < n; ++i) rows[i] = buffer.data() + (done + i) * w * channels;
    const JDIMENSION got = jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(n));
    if (got == 0) break;  // cannot happen with a memory source; guards an endless loop
    done += got;
  }
  if (y1 < sh && job.read_to_end) {
    // jpeg_skip_scanlines to the very end would just mark the input finished without decoding
    // it; skipping all but the last row and reading that one decodes every MCU.
    if (sh - 1 > y1) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(sh - 1 - y1));
    job.last_row->resize(static_cast<size_t>(w * channels));
    JSAMPROW row = job.last_row->data();
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  if (cinfo->output_scanline >= cinfo->output_height) {
    jpeg_finish_decompress(cinfo);  // reads up to EOI: trailing truncation shows up here
  } else {
    jpeg_abort_decompress(cinfo);
  }
  job.x0 = x0;
  job.y0 = y0;
  job.w = w;
  job.h = h;
  return true;
}

// Whether an EOI marker ends the data (allowing a few bytes of padding after it).
bool ends_with_eoi(const uint8_t* data, size_t size) {
  for (size_t i = size >= 32 ? size - 32 : 0; i + 1 < size; ++i)
    if (data[i] == 0xFF && data[i + 1] == 0xD9) return true;
  return false;
}

// EXIF orientation 1..8 maps an upright pixel (x, y) to a stored one; these map rectangles.
// stored_w/h: the stored image's size.
PixelRect upright_to_stored(const PixelRect& r, int64_t stored_w, int64_t stored_h, int orientation) {
  const int64_t W = stored_w, H = stored_h;
  switch (orientation) {
    case 2: return {W - r.left - r.width, r.top, r.width, r.height};
    case 3: return {W - r.left - r.width, H - r.top - r.height, r.width, r.height};
    case 4: return {r.left, H - r.top - r.height, r.width, r.height};
    case 5: return {r.top, r.left, r.height, r.width};
    case 6: return {r.top, H - r.left - r.width, r.height, r.width};
    case 7: return {W - r.top - r.height, H - r.left - r.width, r.height, r.width};
    case 8: return {W - r.top - r.height, r.left, r.height, r.width};
    default: return r;
  }
}

// The inverse: a stored rectangle's upright position (6 and 8 are each other's inverse, the
// other orientations are involutions). upright_w/h: the upright image's size.
PixelRect stored_to_upright(const PixelRect& r, int64_t upright_w, int64_t upright_h, int orientation) {
  const int inverse = orientation == 6 ? 8 : orientation == 8 ? 6 : orientation;
  return upright_to_stored(r, upright_w, upright_h, inverse);
}

}  // namespace

void decode_jpeg_into(const uint8_t* data, size_t size, const JpegHeader& header,
                      const DecodeOptions& options, const std::string& source, Decoded& result) {
  const int orientation = options.apply_exif_orientation ? header.exif_orientation : 0;
  const bool oriented = orientation > 1 && orientation <= 8;
  const bool swap = oriented && orientation >= 5;
  result.full_width = swap ? header.height : header.width;
  result.full_height = swap ? header.width : header.height;
  // The minimum size is upright; the decoder works in stored orientation.
  choose_dct_scale(header.width, header.height, swap ? options.min_height : options.min_width,
                   swap ? options.min_width : options.min_height, result.scale_num,
                   result.scale_denom);
  const tjscalingfactor factor{result.scale_num, result.scale_denom};
  const int64_t width = TJSCALED(header.width, factor), height = TJSCALED(header.height, factor);
  const auto too_large = [&] {
    DP_THROW("JPEG '" + source + "' is " + std::to_string(header.width) + "x" +
                 std::to_string(header.height) + " pixels, too large to decode",
             "raise DecodeOptions::max_pixels (" + std::to_string(options.max_pixels) +
                 ") if the image is genuine; it guards against decompression bombs");
  };
  if (width * height > options.max_pixels) too_large();

  LibjpegJob job;
  job.data = data;
  job.size = size;
  job.scale_num = result.scale_num;
  job.scale_denom = result.scale_denom;
  const PixelRect& region = options.region;
  // Layouts outside TurboJPEG's list (4:1:0 and rarer) are decoded whole: libjpeg-turbo 2.1's
  // column cropping gives wrong pixels for 4:1:0 at reduced scales.
  if (region.width > 0 && region.height > 0 && header.subsampling >= 0) {
    const int64_t left = std::clamp<int64_t>(region.left, 0, result.full_width - 1);
    const int64_t top = std::clamp<int64_t>(region.top, 0, result.full_height - 1);
    const PixelRect clamped{left, top, std::clamp<int64_t>(region.width, 1, result.full_width - left),
                            std::clamp<int64_t>(region.height, 1, result.full_height - top)};
    const PixelRect stored = upright_to_stored(clamped, header.width, header.height, oriented ? orientation : 1);
    job.has_region = true;
    job.rx0 = stored.left;
    job.ry0 = stored.top;
    job.rx1 = stored.left + stored.width;
    job.ry1 = stored.top + stored.height;
  }
  // Rows below the window need not be decoded. A truncated file cannot end with an EOI marker,
  // so for the default policy only files without one are entropy-decoded to the end (where
  // the truncation warning then fails them as before); kFailOnAny always decodes to the end.
  job.read_to_end = options.warnings == JpegWarnings::kFailOnAny ||
                    (options.warnings == JpegWarnings::kFailOnTruncation && !ends_with_eoi(data, size));
  thread_local std::vector<uint8_t> cmyk_buffer, oriented_buffer, last_row;
  job.last_row = &last_row;
  job.rgb = oriented ? &oriented_buffer : &result.image.pixels;
  job.cmyk = &cmyk_buffer;
  LibjpegHolder holder;
  DP_CHECK(holder.created, "cannot create a libjpeg decompressor for '" + source + "'", "out of memory?");
  holder.err.policy = options.warnings;
  job.max_pixels = options.max_pixels;
  if (!decode_with_libjpeg(holder, job)) {
    if (job.too_large) too_large();
    const std::string message = holder.err.message;
    DP_THROW("cannot decode JPEG '" + source + "': " + message, hint_for(message));
  }

  Image stored;  // used only for CMYK and oriented images
  Image& target = oriented ? stored : result.image;
  if (job.is_cmyk) {
    // libjpeg-turbo returns the stored values; Adobe files (Photoshop, all CMYK JPEGs seen in
    // practice) store them inverted. Without an Adobe segment, assume plain CMYK.
    target = cmyk_to_rgb(cmyk_buffer.data(), job.h, job.w, job.adobe);
  } else if (oriented) {
    stored.height = job.h;
    stored.width = job.w;
    stored.channels = 3;
    stored.pixels.swap(oriented_buffer);
  } else {
    result.image.height = job.h;
    result.image.width = job.w;
    result.image.channels = 3;
  }
  result.scaled_width = swap ? job.scaled_h : job.scaled_w;
  result.scaled_height = swap ? job.scaled_w : job.scaled_h;
  if (oriented) {
    const PixelRect upright = stored_to_upright({job.x0, job.y0, job.w, job.h}, result.scaled_width,
                                                result.scaled_height, orientation);
    result.offset_x = upright.left;
    result.offset_y = upright.top;
    result.image = apply_exif_orientation(stored, orientation);
    if (!job.is_cmyk) oriented_buffer.swap(stored.pixels);  // keep the capacity for next time
  } else {
    result.offset_x = job.x0;
    result.offset_y = job.y0;
  }
}

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                    const std::string& source) {
  const JpegHeader header = read_jpeg_header(data, size, source);
  Decoded result;
  decode_jpeg_into(data, size, header, options, source, result);
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
