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

Image resize_bilinear(const Image& image, int64_t out_height, int64_t out_width) {
  if (image.height == out_height && image.width == out_width) return image;
  Image out(out_height, out_width, image.channels);
  const int type = CV_8UC(static_cast<int>(image.channels));
  const cv::Mat src(static_cast<int>(image.height), static_cast<int>(image.width), type,
                    const_cast<uint8_t*>(image.pixels.data()));
  cv::Mat dst(static_cast<int>(out_height), static_cast<int>(out_width), type, out.pixels.data());
  const bool big_reduction = out_height * 2 < image.height || out_width * 2 < image.width;
  cv::resize(src, dst, dst.size(), 0, 0, big_reduction ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

void normalize_to_chw(const Image& image, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out) {
  DP_CHECK(image.channels == 3, "normalise expects 3 channels, got " + std::to_string(image.channels),
           "decode images as RGB");
  const int64_t plane = image.height * image.width;
  for (int c = 0; c < 3; ++c) {
    // (x / 255 - m) / s = x * a + b with a = 1 / (255 s), b = -m / s: one FMA per value.
    const float a = 1.0f / (255.0f * std[c]), b = -mean[c] / std[c];
    float* dst = out + c * plane;
    const uint8_t* src = image.pixels.data() + c;
    for (int64_t p = 0; p < plane; ++p) dst[p] = static_cast<float>(src[3 * p]) * a + b;
  }
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

Image Transform::apply_uint8(const RawSample& sample, uint64_t seed, int64_t epoch) const {
  SampleRng rng(seed, RngStream::kAugment, static_cast<uint64_t>(epoch),
                static_cast<uint64_t>(sample.index));
  const bool encoded = sample.image.empty();
  DP_CHECK(!encoded || !sample.encoded.empty(), "sample '" + sample.source + "' holds no image",
           "the dataset returned an empty sample");

  // Full-resolution size first (header only for JPEGs), so crop parameters are drawn on the
  // original image exactly as torchvision would, and the decoder can then reduce in the DCT domain.
  int64_t full_h = sample.image.height, full_w = sample.image.width;
  const bool jpeg = encoded && is_jpeg(sample.encoded.data(), sample.encoded.size());
  if (jpeg) {
    const JpegHeader header = read_jpeg_header(sample.encoded.data(), sample.encoded.size(), sample.source);
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
  } else if (spec_.geometry == Geometry::kResizeCenterCrop && (!encoded || jpeg)) {
    resized = resize_shorter_side(full_h, full_w, spec_.resize_shorter);
    decode.min_width = resized[1];
    decode.min_height = resized[0];
  }
  if (!spec_.dct_scaling) decode.min_width = decode.min_height = 0;

  Image image;
  double sx = 1.0, sy = 1.0;  // decoded size / full size
  if (encoded) {
    Decoded decoded = decode_image(sample.encoded.data(), sample.encoded.size(), decode, sample.source);
    image = std::move(decoded.image);
    if (!jpeg) {  // other formats: sizes known only now
      full_h = image.height;
      full_w = image.width;
      if (spec_.geometry == Geometry::kRandomResizedCrop)
        box = random_resized_crop_box(full_h, full_w, spec_.scale, spec_.ratio, rng);
      if (spec_.geometry == Geometry::kResizeCenterCrop)
        resized = resize_shorter_side(full_h, full_w, spec_.resize_shorter);
    }
    sx = static_cast<double>(image.width) / static_cast<double>(full_w);
    sy = static_cast<double>(image.height) / static_cast<double>(full_h);
  } else {
    image = sample.image;
  }

  Image out;
  switch (spec_.geometry) {
    case Geometry::kNone:
      out = std::move(image);
      break;
    case Geometry::kRandomResizedCrop: {
      // Map the crop into the (possibly DCT-reduced) image; at scale 1 this is the box itself.
      auto scaled = [](int64_t v, double s) { return static_cast<int64_t>(std::llround(static_cast<double>(v) * s)); };
      const int64_t top = std::min(scaled(box.top, sy), image.height - 1);
      const int64_t left = std::min(scaled(box.left, sx), image.width - 1);
      const int64_t h = std::clamp<int64_t>(scaled(box.top + box.height, sy) - top, 1, image.height - top);
      const int64_t w = std::clamp<int64_t>(scaled(box.left + box.width, sx) - left, 1, image.width - left);
      out = resize_bilinear(crop_with_zero_pad(image, top, left, h, w), spec_.height, spec_.width);
      break;
    }
    case Geometry::kResizeCenterCrop: {
      Image r = resize_bilinear(image, resized[0], resized[1]);
      const CropBox c = center_crop_box(r.height, r.width, spec_.height, spec_.width);
      out = crop_with_zero_pad(r, c.top, c.left, c.height, c.width);
      break;
    }
    case Geometry::kRandomCrop: {
      // Pad, then torchvision's randint(0, h - th + 1) for the top, then the left.
      const int64_t ph = image.height + 2 * spec_.padding, pw = image.width + 2 * spec_.padding;
      DP_CHECK(ph >= spec_.height && pw >= spec_.width,
               "RandomCrop " + std::to_string(spec_.height) + "x" + std::to_string(spec_.width) +
                   " is larger than the padded image of '" + sample.source + "'",
               "increase padding or reduce the crop size");
      const auto top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(ph - spec_.height + 1)));
      const auto left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(pw - spec_.width + 1)));
      out = crop_with_zero_pad(image, top - spec_.padding, left - spec_.padding, spec_.height, spec_.width);
      break;
    }
    case Geometry::kCenterCrop: {
      const CropBox c = center_crop_box(image.height, image.width, spec_.height, spec_.width);
      out = crop_with_zero_pad(image, c.top, c.left, c.height, c.width);
      break;
    }
  }
  if (spec_.flip_probability > 0.0 && rng.uniform() < spec_.flip_probability) flip_horizontal(out);
  return out;
}

void Transform::apply(const RawSample& sample, uint64_t seed, int64_t epoch, float* out) const {
  const Image image = apply_uint8(sample, seed, epoch);
  if (spec_.normalize) {
    normalize_to_chw(image, spec_.mean, spec_.std, out);
  } else {
    normalize_to_chw(image, {0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}, out);
  }
}

}  // namespace dp::data
