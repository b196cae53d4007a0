#include "app/inspect/thumbnail.h"

#include <fmt/format.h>
#include <turbojpeg.h>

#include <memory>
#include <opencv2/imgproc.hpp>

#include "data/jpeg_decode.h"
#include "engine/error.h"

namespace dp::app::inspect {

namespace {

data::Image decoded_image(const data::Dataset& dataset, int64_t index, int max_side) {
  data::RawSample s = dataset.load(index);
  if (!s.image.empty()) return std::move(s.image);
  data::DecodeOptions o;
  o.min_width = o.min_height = max_side;  // DCT-scale large JPEGs down, never below the thumbnail
  return data::decode_image(s.encoded.data(), s.encoded.size(), o, s.source.empty() ? dataset.source(index) : s.source)
      .image;
}

std::vector<uint8_t> encode_jpeg(const cv::Mat& rgb) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitCompress(), tjDestroy);
  DP_CHECK(tj != nullptr, "TurboJPEG could not start a compressor", "out of memory?");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(tj.get(), rgb.data, rgb.cols, static_cast<int>(rgb.step), rgb.rows, TJPF_RGB, &out, &size,
                             TJSAMP_420, 88, 0);
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(out, tjFree);
  DP_CHECK(rc == 0, fmt::format("TurboJPEG could not encode a thumbnail: {}", tjGetErrorStr2(tj.get())),
           "out of memory?");
  return std::vector<uint8_t>(out, out + size);
}

}  // namespace

Thumbnail make_thumbnail(const data::Dataset& dataset, int64_t index, int max_side) {
  Thumbnail t;
  try {
    const data::Image image = decoded_image(dataset, index, max_side);
    DP_CHECK(image.channels == 1 || image.channels == 3,
             fmt::format("{} channels", image.channels), "thumbnails are grey or RGB");
    cv::Mat src(static_cast<int>(image.height), static_cast<int>(image.width), image.channels == 3 ? CV_8UC3 : CV_8UC1,
                const_cast<uint8_t*>(image.pixels.data()));
    cv::Mat rgb;
    if (image.channels == 1)
      cv::cvtColor(src, rgb, cv::COLOR_GRAY2RGB);
    else
      rgb = src;
    const double scale = std::min(1.0, static_cast<double>(max_side) / std::max(rgb.cols, rgb.rows));
    if (scale < 1.0) {
      cv::Mat small;
      cv::resize(rgb, small, cv::Size(std::max(1, static_cast<int>(rgb.cols * scale + 0.5)),
                                      std::max(1, static_cast<int>(rgb.rows * scale + 0.5))),
                 0, 0, cv::INTER_AREA);
      rgb = small;
    }
    if (!rgb.isContinuous()) rgb = rgb.clone();
    t.jpeg = encode_jpeg(rgb);
    t.width = rgb.cols;
    t.height = rgb.rows;
  } catch (const std::exception& e) {
    t.jpeg.clear();
    t.error = e.what();
    // The first line: the hint after it is about training, not about a picture.
    if (const size_t nl = t.error.find('\n'); nl != std::string::npos) t.error.resize(nl);
  }
  return t;
}

}  // namespace dp::app::inspect
