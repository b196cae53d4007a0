// JPEG (and other formats through OpenCV) decode, then the training transform
// (RandomResizedCrop with DCT scaling and window decode, flip, normalise) on the same bytes.
#include <cstdint>
#include <vector>

#include "data/jpeg_decode.h"
#include "data/transforms.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dp::data::DecodeOptions options;
  options.max_pixels = int64_t{1} << 22;  // keep the fuzzer fast; the guard itself is under test
  try {
    dp::data::decode_image(data, size, options, "fuzz.jpg");
  } catch (const dp::Error&) {
  }
  static const dp::data::Transform transform = [] {
    dp::data::TransformSpec spec = dp::data::imagenet_train_transform(32);
    spec.decode.max_pixels = int64_t{1} << 22;
    return dp::data::Transform(spec);
  }();
  dp::data::RawSample sample;
  sample.index = size % 97;
  sample.source = "fuzz.jpg";
  sample.encoded.assign(data, data + size);
  try {
    std::vector<float> out(3 * 32 * 32);
    transform.apply(sample, 7, 1, out.data());
  } catch (const dp::Error&) {
  }
  return 0;
}
