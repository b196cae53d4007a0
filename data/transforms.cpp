#include "data/transforms.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "data/image_ops.h"
#include "data/sample_rng.h"
#include "engine/error.h"

namespace dp::data {

namespace {

// Python's round(): half to even, which std::nearbyint gives in the default rounding mode.
int64_t round_half_even(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

}  // namespace

CropBox random_resized_crop_box(int64_t height, int64_t width, std::array<double, 2> scale,
                                std::array<double, 2> ratio, dp::Rng& rng) {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale[0], scale[1]);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const auto left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < std::min(ratio[0], ratio[1])) {
    h = round_half_even(static_cast<double>(w) / std::min(ratio[0], ratio[1]));
  } else if (in_ratio > std::max(ratio[0], ratio[1])) {
    w = round_half_even(static_cast<double>(h) * std::max(ratio[0], ratio[1]));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

std::array<int64_t, 2> resize_shorter_side(int64_t height, int64_t width, int64_t shorter) {
  if (width <= height)
    return {static_cast<int64_t>(static_cast<double>(shorter) * static_cast<double>(height) /
                                 static_cast<double>(width)),
            shorter};
  return {shorter, static_cast<int64_t>(static_cast<double>(shorter) * static_cast<double>(width) /
                                        static_cast<double>(height))};
}

CropBox center_crop_box(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width) {
  return {round_half_even(static_cast<double>(height - crop_height) / 2.0),
          round_half_even(static_cast<double>(width - crop_width) / 2.0), crop_height, crop_width};
}

namespace {

// Resizes the window [top, top + height) x [left, left + width) of `image` into `out` (its
// storage reused) without copying the window first: cv::resize on a ROI reads only the ROI.
void resize_window_into(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width,
                        int64_t out_height, int64_t out_width, Image& out) {
  DP_CHECK(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height &&
               left + width <= image.width,
           "resize window " + std::to_string(width) + "x" + std::to_string(height) + "+" +
               std::to_string(left) + "+" + std::to_string(top) + " is outside the " +
               std::to_string(image.width) + "x" + std::to_string(image.height) + " image",
           "internal error in the crop mapping: please report it");
  out.height = out_height;
  out.width = out_width;
  out.channels = image.channels;
  out.pixels.resize(static_cast<size_t>(out_height * out_width * image.channels));
  const int type = CV_8UC(static_cast<int>(image.channels));
  const cv::Mat whole(static_cast<int>(image.height), static_cast<int>(image.width), type,
                      const_cast<uint8_t*>(image.pixels.data()));
  const cv::Mat src = whole(cv::Rect(static_cast<int>(left), static_cast<int>(top),
                                     static_cast<int>(width), static_cast<int>(height)));
  cv::Mat dst(static_cast<int>(out_height), static_cast<int>(out_width), type, out.pixels.data());
  if (height == out_height && width == out_width) {
    src.copyTo(dst);
    return;
  }
  const bool big_reduction = out_height * 2 < height || out_width * 2 < width;
  cv::resize(src, dst, dst.size(), 0, 0, big_reduction ? cv::INTER_AREA : cv::INTER_LINEAR);
}

// Optional horizontal flip, then (pixel / 255 - mean) / std into planar CHW floats, with
// OpenCV's vectorised flip, channel split and scaled conversion.
void flip_normalize_to_chw(const Image& image, bool flip, const std::array<float, 3>& mean,
                           const std::array<float, 3>& std, float* out) {
  DP_CHECK(image.channels == 3, "normalise expects 3 channels, got " + std::to_string(image.channels),
           "decode images as RGB");
  const int h = static_cast<int>(image.height), w = static_cast<int>(image.width);
  const cv::Mat src(h, w, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
  thread_local cv::Mat flipped;
  thread_local cv::Mat planes[3];
  if (flip) cv::flip(src, flipped, 1);
  cv::split(flip ? flipped : src, planes);
  const size_t plane = static_cast<size_t>(h) * static_cast<size_t>(w);
  for (int c = 0; c < 3; ++c) {
    // (x / 255 - m) / s = x * a + b with a = 1 / (255 s), b = -m / s.
    const double a = 1.0 / (255.0 * std[c]), b = -static_cast<double>(mean[c]) / std[c];
    cv::Mat dst(h, w, CV_32F, out + c * plane);
    planes[c].convertTo(dst, CV_32F, a, b);
  }
}

}  // namespace

Image resize_bilinear(const Image& image, int64_t out_height, int64_t out_width) {
  if (image.height == out_height && image.width == out_width) return image;
  Image out;
  resize_window_into(image, 0, 0, image.height, image.width, out_height, out_width, out);
  return out;
}

void normalize_to_chw(const Image& image, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out) {
  flip_normalize_to_chw(image, false, mean, std, out);
}

TransformSpec cifar_train_transform() {
  TransformSpec spec;
  spec.geometry = Geometry::kRandomCrop;
  spec.height = spec.width = 32;
  spec.padding = 4;
  spec.flip_probability = 0.5;
  spec.mean = {0.4914f, 0.4822f, 0.4465f};
  spec.std = {0.2023f, 0.1994f, 0.2010f};
  return spec;
}

TransformSpec cifar_test_transform() {
  TransformSpec spec = cifar_train_transform();
  spec.geometry = Geometry::kNone;
  spec.padding = 0;
  spec.flip_probability = 0.0;
  return spec;
}

TransformSpec imagenet_train_transform(int64_t size) {
  TransformSpec spec;
  spec.geometry = Geometry::kRandomResizedCrop;
  spec.height = spec.width = size;
  spec.flip_probability = 0.5;
  spec.mean = {0.485f, 0.456f, 0.406f};
  spec.std = {0.229f, 0.224f, 0.225f};
  return spec;
}

TransformSpec imagenet_val_transform(int64_t resize, int64_t size) {
  TransformSpec spec = imagenet_train_transform(size);
  spec.geometry = Geometry::kResizeCenterCrop;
  spec.resize_shorter = resize;
  spec.flip_probability = 0.0;
  return spec;
}

Transform::Transform(TransformSpec spec) : spec_(std::move(spec)) {
  const bool sized = spec_.geometry != Geometry::kNone;
  DP_CHECK(!sized || (spec_.height > 0 && spec_.width > 0), "transform output size must be positive",
           "set height and width");
  DP_CHECK(spec_.geometry != Geometry::kResizeCenterCrop || spec_.resize_shorter > 0,
           "Resize + CenterCrop needs resize_shorter > 0", "e.g. 256 for ImageNet validation");
  DP_CHECK(spec_.scale[0] > 0 && spec_.scale[0] <= spec_.scale[1] && spec_.ratio[0] > 0 &&
               spec_.ratio[0] <= spec_.ratio[1],
           "RandomResizedCrop scale/ratio ranges must be positive and ordered",
           "use e.g. scale (0.08, 1), ratio (3/4, 4/3)");
}

bool Transform::geometry(const RawSample& sample, uint64_t seed, int64_t epoch, Image& out) const {
  SampleRng rng(seed, RngStream::kAugment, static_cast<uint64_t>(epoch),
                static_cast<uint64_t>(sample.index));
  const bool encoded = sample.image.empty();
  DP_CHECK(!encoded || !sample.encoded.empty(), "sample '" + sample.source + "' holds no image",
           "the dataset returned an empty sample");

  // Full-resolution size first (header only for JPEGs), so crop parameters are drawn on the
  // original image exactly as torchvision would, and the decoder can then reduce in the DCT domain.
  int64_t full_h = sample.image.height, full_w = sample.image.width;
  const bool jpeg = encoded && is_jpeg(sample.encoded.data(), sample.encoded.size());
  JpegHeader header;
  if (jpeg) {
    header = read_jpeg_header(sample.encoded.data(), sample.encoded.size(), sample.source);
    const bool swap = spec_.decode.apply_exif_orientation && header.exif_orientation >= 5;
    full_h = swap ? header.width : header.height;
    full_w = swap ? header.height : header.width;
  }
  DecodeOptions decode = spec_.decode;
  CropBox box;
  std::array<int64_t, 2> resized{};
  if (spec_.geometry == Geometry::kRandomResizedCrop && (!encoded || jpeg)) {
    box = random_resized_crop_box(full_h, full_w, spec_.scale, spec_.ratio, rng);
    // The decoded image must keep the crop at least as large as the output.
    decode.min_width = (spec_.width * full_w + box.width - 1) / box.width;
    decode.min_height = (spec_.height * full_h + box.height - 1) / box.height;
    // Only the crop's pixels are needed: the JPEG decoder skips the IDCT, upsampling and colour
    // conversion of everything outside (a few pixels around it).
    decode.region = {box.left, box.top, box.width, box.height};
  } else if (spec_.geometry == Geometry::kResizeCenterCrop && (!encoded || jpeg)) {
    resized = resize_shorter_side(full_h, full_w, spec_.resize_shorter);
    decode.min_width = resized[1];
    decode.min_height = resized[0];
  }
  if (!spec_.dct_scaling) decode.min_width = decode.min_height = 0;

  // Per-thread decode buffer: no allocation (and no page faults) per sample once warm.
  thread_local Decoded decoded;
  Image owned;
  const Image* image = &owned;
  double sx = 1.0, sy = 1.0;           // scaled whole image / full size
  int64_t offset_x = 0, offset_y = 0;  // of *image within the scaled whole image
  int64_t scaled_w = full_w, scaled_h = full_h;
  if (jpeg) {
    decode_jpeg_into(sample.encoded.data(), sample.encoded.size(), header, decode, sample.source, decoded);
    image = &decoded.image;
    scaled_w = decoded.scaled_width;
    scaled_h = decoded.scaled_height;
    offset_x = decoded.offset_x;
    offset_y = decoded.offset_y;
  } else if (encoded) {
    owned = decode_image(sample.encoded.data(), sample.encoded.size(), decode, sample.source).image;
    // Other formats: sizes known only now.
    full_h = scaled_h = owned.height;
    full_w = scaled_w = owned.width;
    if (spec_.geometry == Geometry::kRandomResizedCrop)
      box = random_resized_crop_box(full_h, full_w, spec_.scale, spec_.ratio, rng);
    if (spec_.geometry == Geometry::kResizeCenterCrop)
      resized = resize_shorter_side(full_h, full_w, spec_.resize_shorter);
  } else {
    image = &sample.image;
  }
  sx = static_cast<double>(scaled_w) / static_cast<double>(full_w);
  sy = static_cast<double>(scaled_h) / static_cast<double>(full_h);
  const bool whole = offset_x == 0 && offset_y == 0 && image->width == scaled_w && image->height == scaled_h;

  switch (spec_.geometry) {
    case Geometry::kNone:
      out = *image;
      break;
    case Geometry::kRandomResizedCrop: {
      // Map the crop into the (possibly DCT-reduced) image; at scale 1 this is the box itself.
      auto scaled = [](int64_t v, double s) { return static_cast<int64_t>(std::llround(static_cast<double>(v) * s)); };
      const int64_t top = std::min(scaled(box.top, sy), scaled_h - 1);
      const int64_t left = std::min(scaled(box.left, sx), scaled_w - 1);
      const int64_t h = std::clamp<int64_t>(scaled(box.top + box.height, sy) - top, 1, scaled_h - top);
      const int64_t w = std::clamp<int64_t>(scaled(box.left + box.width, sx) - left, 1, scaled_w - left);
      resize_window_into(*image, top - offset_y, left - offset_x, h, w, spec_.height, spec_.width, out);
      break;
    }
    case Geometry::kResizeCenterCrop: {
      DP_CHECK(whole, "Resize + CenterCrop needs the whole decoded image", "internal error: please report it");
      Image r = resize_bilinear(*image, resized[0], resized[1]);
      const CropBox c = center_crop_box(r.height, r.width, spec_.height, spec_.width);
      out = crop_with_zero_pad(r, c.top, c.left, c.height, c.width);
      break;
    }
    case Geometry::kRandomCrop: {
      // Pad, then torchvision's randint(0, h - th + 1) for the top, then the left.
      const int64_t ph = image->height + 2 * spec_.padding, pw = image->width + 2 * spec_.padding;
      DP_CHECK(ph >= spec_.height && pw >= spec_.width,
               "RandomCrop " + std::to_string(spec_.height) + "x" + std::to_string(spec_.width) +
                   " is larger than the padded image of '" + sample.source + "'",
               "increase padding or reduce the crop size");
      const auto top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(ph - spec_.height + 1)));
      const auto left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(pw - spec_.width + 1)));
      out = crop_with_zero_pad(*image, top - spec_.padding, left - spec_.padding, spec_.height, spec_.width);
      break;
    }
    case Geometry::kCenterCrop: {
      const CropBox c = center_crop_box(image->height, image->width, spec_.height, spec_.width);
      out = crop_with_zero_pad(*image, c.top, c.left, c.height, c.width);
      break;
    }
  }
  // Keep the per-thread decode buffer for the next sample unless an exceptionally large image
  // grew it (it would otherwise stay allocated for the thread's lifetime).
  if (decoded.image.pixels.capacity() > (size_t{64} << 20)) decoded.image = Image();
  return spec_.flip_probability > 0.0 && rng.uniform() < spec_.flip_probability;
}

Image Transform::apply_uint8(const RawSample& sample, uint64_t seed, int64_t epoch) const {
  Image out;
  if (geometry(sample, seed, epoch, out)) flip_horizontal(out);
  return out;
}

void Transform::apply(const RawSample& sample, uint64_t seed, int64_t epoch, float* out) const {
  thread_local Image image;
  const bool flip = geometry(sample, seed, epoch, image);
  if (spec_.normalize) {
    flip_normalize_to_chw(image, flip, spec_.mean, spec_.std, out);
  } else {
    flip_normalize_to_chw(image, flip, {0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}, out);
  }
}

}  // namespace dp::data
