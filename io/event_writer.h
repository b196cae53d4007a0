// TensorBoard event files without TensorFlow: TFRecord framing around hand-encoded Event
// protobufs (scalars, histograms and PNG images), which TensorBoard and tensorboardX readers accept.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace dp::io {

struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;  // right edges, last one +inf-like
  std::vector<double> bucket;        // counts (binned by the caller: train/sigma_histogram.h)
};

class EventWriter {
 public:
  // Creates DIR/events.out.tfevents.<time>.<host>.<suffix>; writes the file_version record.
  EventWriter(const std::string& dir, const std::string& suffix = "dp-engine");
  void add_scalar(const std::string& tag, double value, int64_t step);
  void add_histogram(const std::string& tag, const Histogram& h, int64_t step);
  // A PNG-encoded RGB image of width × height pixels (TensorBoard's Images tab).
  void add_image(const std::string& tag, const std::vector<uint8_t>& png, int width, int height, int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);
  void write_summary(const std::string& value, int64_t step);  // one Summary.Value as an event
  std::string path_;
  std::ofstream out_;
};

// Protobuf and framing helpers, exposed for tests.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace dp::io
