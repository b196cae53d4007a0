// Augmentations with torchvision's semantics, driven by counter-based randomness so that a
// sample's augmentation depends only on (seed, epoch, index).
//
// Resizing differs from torchvision+PIL on purpose (speed): PIL's bilinear filter antialiases
// on downscale (a triangle filter whose support grows with the reduction factor), OpenCV's
// INTER_LINEAR does not. We use INTER_LINEAR when the reduction per axis is at most 2x (incl.
// upscaling) and INTER_AREA (area-weighted box average, antialiased) beyond that; together with
// the DCT-domain reduction in decoding (which averages over 8x8 blocks), this keeps aliasing at
// bay. Output geometry (sizes, crop boxes, rounding) is exactly torchvision's; pixel values
// differ by a few grey levels on average (see tests/data/test_transforms.cpp for the bounds).
//
// RandomResizedCrop on a JPEG: the crop box is drawn on the full size read from the header (as
// torchvision does on the decoded image), then only the crop's window is decoded (libjpeg's
// jpeg_crop_scanline / jpeg_skip_scanlines, at the smallest DCT scale <= 1/2 that keeps the crop
// at least output-sized) and resized in place from the decode buffer (an OpenCV ROI, no crop
// copy). The window's pixels are exactly those of a full decode at that scale, so this changes
// speed, not values. Flip, normalisation and HWC -> CHW are one pass in apply().
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/jpeg_decode.h"
#include "engine/rng.h"

namespace dp::data {

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision.transforms.RandomResizedCrop.get_params: 10 attempts with target area
// uniform in scale * area and log-uniform aspect ratio, w = round(sqrt(area * ratio)),
// h = round(sqrt(area / ratio)) (round half to even, as Python's round), offsets uniform; then
// the fallback: the whole image clamped to the ratio range, centred (floor division).
CropBox random_resized_crop_box(int64_t height, int64_t width, std::array<double, 2> scale,
                                std::array<double, 2> ratio, dp::Rng& rng);

// torchvision Resize(int): the shorter side becomes `shorter`, the longer int(shorter * long /
// short) (truncated). Returns {new_height, new_width}.
std::array<int64_t, 2> resize_shorter_side(int64_t height, int64_t width, int64_t shorter);

// torchvision CenterCrop: top = int(round((h - th) / 2.0)), left likewise (may be negative:
// the crop is then zero padded, as torchvision pads).
CropBox center_crop_box(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width);

// Bilinear resize of a uint8 image; INTER_AREA beyond a 2x reduction (see the header comment).
Image resize_bilinear(const Image& image, int64_t out_height, int64_t out_width);

// (pixel / 255 - mean) / std into planar CHW floats (out holds channels * height * width).
void normalize_to_chw(const Image& image, const std::array<float, 3>& mean,
                      const std::array<float, 3>& std, float* out);

enum class Geometry {
  kNone,               // keep the image (all samples must then share a size, e.g. CIFAR)
  kRandomResizedCrop,  // train on ImageNet-like data
  kResizeCenterCrop,   // validation: Resize(resize_shorter) then CenterCrop(height x width)
  kRandomCrop,         // CIFAR train: zero-pad by `padding`, random height x width crop
  kCenterCrop,
};

struct TransformSpec {
  Geometry geometry = Geometry::kNone;
  int64_t height = 0, width = 0;  // output size (0 with kNone: the input's)
  int64_t resize_shorter = 0;     // kResizeCenterCrop
  int64_t padding = 0;            // kRandomCrop
  std::array<double, 2> scale = {0.08, 1.0};
  std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0};
  double flip_probability = 0.0;  // horizontal flip
  bool normalize = true;          // false: output pixel / 255 only
  std::array<float, 3> mean = {0.0f, 0.0f, 0.0f};
  std::array<float, 3> std = {1.0f, 1.0f, 1.0f};
  bool dct_scaling = true;        // let the JPEG decoder reduce by up to 8x first
  DecodeOptions decode;           // EXIF orientation, warning policy (min sizes are set per sample)
};

// The presets of docs/method.md §4.
TransformSpec cifar_train_transform();
TransformSpec cifar_test_transform();
TransformSpec imagenet_train_transform(int64_t size = 224);
TransformSpec imagenet_val_transform(int64_t resize = 256, int64_t size = 224);

class Transform {
 public:
  explicit Transform(TransformSpec spec);
  const TransformSpec& spec() const { return spec_; }

  // Geometry and flip on one sample (decoding it first if it holds encoded bytes), uint8 HWC RGB.
  // Randomness: dp::Rng keyed by (seed, epoch, sample.index); draws in torchvision's order
  // (crop parameters, then the flip).
  Image apply_uint8(const RawSample& sample, uint64_t seed, int64_t epoch) const;
  // apply_uint8 then to float and normalise into `out` (3 x height x width floats), with the
  // flip fused into the normalisation and per-thread buffers (no per-sample allocation).
  void apply(const RawSample& sample, uint64_t seed, int64_t epoch, float* out) const;

 private:
  // Decoding and geometry into `out` (its storage reused); returns whether to flip.
  bool geometry(const RawSample& sample, uint64_t seed, int64_t epoch, Image& out) const;

  TransformSpec spec_;
};

}  // namespace dp::data
