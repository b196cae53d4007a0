#include "io/event_writer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace dp::io {

namespace {

// ---- CRC-32C (Castagnoli), as TFRecord framing requires ----
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// ---- minimal protobuf encoding ----
void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void put_key(std::string& s, int field, int wire_type) {
  put_varint(s, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
}
void put_double(std::string& s, int field, double v) {
  put_key(s, field, 1);
  char b[8];
  std::memcpy(b, &v, 8);
  s.append(b, 8);
}
void put_float(std::string& s, int field, float v) {
  put_key(s, field, 5);
  char b[4];
  std::memcpy(b, &v, 4);
  s.append(b, 4);
}
void put_bytes(std::string& s, int field, const std::string& v) {
  put_key(s, field, 2);
  put_varint(s, v.size());
  s += v;
}
void put_packed_doubles(std::string& s, int field, const std::vector<double>& v) {
  std::string body;
  for (double d : v) {
    char b[8];
    std::memcpy(b, &d, 8);
    body.append(b, 8);
  }
  put_bytes(s, field, body);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string event(int64_t step, const std::string* file_version, const std::string* summary) {
  std::string e;
  put_double(e, 1, now_seconds());
  put_key(e, 2, 0);
  put_varint(e, static_cast<uint64_t>(step));
  if (file_version) put_bytes(e, 3, *file_version);
  if (summary) put_bytes(e, 5, *summary);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir, const std::string& suffix) {
  std::filesystem::create_directories(dir);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  path_ = fmt::format("{}/events.out.tfevents.{}.{}.{}", dir,
                      static_cast<int64_t>(now_seconds()), host, suffix);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  DP_CHECK(out_.good(), "cannot create the event file " + path_,
           "check that the output folder is writable");
  std::string version = "brain.Event:2";
  write_record(event(0, &version, nullptr));
  flush();
}

void EventWriter::write_record(const std::string& payload) {
  // TFRecord: uint64 length, masked crc of the length, payload, masked crc of the payload.
  uint64_t len = payload.size();
  char len_bytes[8];
  std::memcpy(len_bytes, &len, 8);  // little-endian hosts only (x86-64, aarch64)
  uint32_t len_crc = masked_crc32c(len_bytes, 8);
  uint32_t data_crc = masked_crc32c(payload.data(), payload.size());
  out_.write(len_bytes, 8);
  out_.write(reinterpret_cast<const char*>(&len_crc), 4);
  out_.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  out_.write(reinterpret_cast<const char*>(&data_crc), 4);
  DP_CHECK(out_.good(), "writing the event file " + path_ + " failed", "check free disk space");
}

void EventWriter::write_summary(const std::string& value, int64_t step) {
  // Event.summary: Summary { repeated Value value = 1; }, with the one Value.
  std::string summary;
  put_bytes(summary, 1, value);
  write_record(event(step, nullptr, &summary));
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  put_bytes(v, 1, tag);
  put_float(v, 2, static_cast<float>(value));
  write_summary(v, step);
}

void EventWriter::add_histogram(const std::string& tag, const Histogram& h, int64_t step) {
  // HistogramProto { double min=1, max=2, num=3, sum=4, sum_squares=5;
  //                  repeated double bucket_limit=6 [packed]; repeated double bucket=7 [packed]; }
  std::string histo;
  put_double(histo, 1, h.min);
  put_double(histo, 2, h.max);
  put_double(histo, 3, h.num);
  put_double(histo, 4, h.sum);
  put_double(histo, 5, h.sum_squares);
  put_packed_doubles(histo, 6, h.bucket_limit);
  put_packed_doubles(histo, 7, h.bucket);
  std::string v;
  put_bytes(v, 1, tag);
  put_bytes(v, 5, histo);  // Value.histo = 5
  write_summary(v, step);
}

void EventWriter::add_image(const std::string& tag, const std::vector<uint8_t>& png, int width, int height,
                            int64_t step) {
  // Summary.Image { int32 height=1, width=2, colorspace=3; bytes encoded_image_string=4; }
  std::string image;
  put_key(image, 1, 0);
  put_varint(image, static_cast<uint64_t>(height));
  put_key(image, 2, 0);
  put_varint(image, static_cast<uint64_t>(width));
  put_key(image, 3, 0);
  put_varint(image, 3);  // RGB
  put_bytes(image, 4, std::string(png.begin(), png.end()));
  std::string v;
  put_bytes(v, 1, tag);
  put_bytes(v, 4, image);  // Value.image = 4
  write_summary(v, step);
}

// Records are buffered: a disk that refuses them may only say so here.
void EventWriter::flush() {
  out_.flush();
  DP_CHECK(out_.good(), "writing the event file " + path_ + " failed", "check free disk space");
}

}  // namespace dp::io
