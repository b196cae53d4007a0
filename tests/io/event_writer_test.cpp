// TensorBoard event files, read back by an independent decoder written here from the
// TFRecord and protobuf specifications (bitwise CRC-32C, wire-format parsing).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/error.h"
#include "io/event_writer.h"

namespace {

uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

struct Field {
  int number, wire;
  uint64_t varint = 0;
  std::string bytes;  // length-delimited, fixed64 or fixed32 payload
};

std::vector<Field> parse(const std::string& msg) {
  std::vector<Field> out;
  size_t i = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      uint8_t b = static_cast<uint8_t>(msg.at(i++));
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < msg.size()) {
    uint64_t key = varint();
    Field f{static_cast<int>(key >> 3), static_cast<int>(key & 7)};
    if (f.wire == 0) f.varint = varint();
    else if (f.wire == 1) { f.bytes = msg.substr(i, 8); i += 8; }
    else if (f.wire == 5) { f.bytes = msg.substr(i, 4); i += 4; }
    else if (f.wire == 2) { size_t n = varint(); f.bytes = msg.substr(i, n); i += n; }
    else ADD_FAILURE() << "unexpected wire type " << f.wire;
    out.push_back(f);
  }
  return out;
}

const Field* field(const std::vector<Field>& fs, int number) {
  for (const Field& f : fs)
    if (f.number == number) return &f;
  return nullptr;
}

std::vector<std::string> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t i = 0;
  while (i < data.size()) {
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, data.data() + i, 8);
    std::memcpy(&len_crc, data.data() + i + 8, 4);
    EXPECT_EQ(len_crc, masked(crc32c_bitwise(reinterpret_cast<const uint8_t*>(data.data() + i), 8)));
    std::string payload = data.substr(i + 12, len);
    std::memcpy(&data_crc, data.data() + i + 12 + len, 4);
    EXPECT_EQ(data_crc, masked(crc32c_bitwise(reinterpret_cast<const uint8_t*>(payload.data()), len)));
    records.push_back(payload);
    i += 12 + len + 4;
  }
  EXPECT_EQ(i, data.size());
  return records;
}

}  // namespace

TEST(EventWriter, Crc32cKnownAnswer) {
  // RFC 3720 test vector: 32 bytes of zeros -> 0x8A9136AA.
  uint8_t zeros[32] = {};
  EXPECT_EQ(dp::io::crc32c(zeros, 32), 0x8A9136AAu);
  EXPECT_EQ(dp::io::crc32c("123456789", 9), 0xE3069283u);
}

TEST(EventWriter, ScalarsAndHistogramsReadBack) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-tb-XXXXXX").string();
  std::string dir = mkdtemp(tmpl.data());
  std::string path;
  {
    dp::io::EventWriter w(dir);
    w.add_scalar("train/loss", 2.5, 10);
    w.add_scalar("train/top1", 31.25, 20);
    dp::io::Histogram h;  // of {1.0, 1.5, 2.0, 2.0} in 4 buckets
    h.min = 1.0;
    h.max = 2.0;
    h.num = 4;
    h.sum = 6.5;
    h.sum_squares = 11.25;
    h.bucket_limit = {1.25, 1.5, 1.75, 2.0};
    h.bucket = {1, 0, 1, 2};
    w.add_histogram("sigma/inst", h, 20);
    w.add_image("sigma/figure", {0x89, 'P', 'N', 'G'}, 7, 5, 30);
    w.flush();
    path = w.path();
  }
  std::vector<std::string> records = read_records(path);
  ASSERT_EQ(records.size(), 5u);

  auto first = parse(records[0]);
  ASSERT_NE(field(first, 3), nullptr);
  EXPECT_EQ(field(first, 3)->bytes, "brain.Event:2");

  auto scalar = parse(records[2]);
  EXPECT_EQ(field(scalar, 2)->varint, 20u);
  auto value = parse(field(parse(field(scalar, 5)->bytes), 1)->bytes);
  EXPECT_EQ(field(value, 1)->bytes, "train/top1");
  float v;
  std::memcpy(&v, field(value, 2)->bytes.data(), 4);
  EXPECT_EQ(v, 31.25f);

  auto histo_event = parse(records[3]);
  auto hvalue = parse(field(parse(field(histo_event, 5)->bytes), 1)->bytes);
  EXPECT_EQ(field(hvalue, 1)->bytes, "sigma/inst");
  auto histo = parse(field(hvalue, 5)->bytes);
  double num, mn, mx;
  std::memcpy(&mn, field(histo, 1)->bytes.data(), 8);
  std::memcpy(&mx, field(histo, 2)->bytes.data(), 8);
  std::memcpy(&num, field(histo, 3)->bytes.data(), 8);
  EXPECT_EQ(mn, 1.0);
  EXPECT_EQ(mx, 2.0);
  EXPECT_EQ(num, 4.0);
  const std::string& counts = field(histo, 7)->bytes;
  ASSERT_EQ(counts.size(), 4u * 8);
  double c[4];
  std::memcpy(c, counts.data(), 32);
  EXPECT_EQ(c[0] + c[1] + c[2] + c[3], 4.0);
  EXPECT_EQ(c[3], 2.0);  // both 2.0 values land in the last bucket

  auto image_event = parse(records[4]);
  EXPECT_EQ(field(image_event, 2)->varint, 30u);
  auto ivalue = parse(field(parse(field(image_event, 5)->bytes), 1)->bytes);
  EXPECT_EQ(field(ivalue, 1)->bytes, "sigma/figure");
  auto image = parse(field(ivalue, 4)->bytes);
  EXPECT_EQ(field(image, 1)->varint, 5u);
  EXPECT_EQ(field(image, 2)->varint, 7u);
  EXPECT_EQ(field(image, 4)->bytes, std::string("\x89PNG"));
  std::filesystem::remove_all(dir);
}

// A write the file system refuses (here the process's file-size limit, as a full disk would) is
// reported, also when it only shows at the flush of buffered records (it was ignored there).
TEST(EventWriter, AFailedFlushIsReported) {
  const std::string dir = (std::filesystem::temp_directory_path() / "dp-event-writer-limit").string();
  std::filesystem::remove_all(dir);
  dp::io::EventWriter w(dir, "limit");
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &before), 0);
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);  // the write fails with EFBIG instead of a signal
  rlimit small = before;
  small.rlim_cur = std::filesystem::file_size(w.path()) + 64;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    for (int i = 0; i < 20; ++i) w.add_scalar("train/loss", 1.0, i);  // ~600 bytes, buffered
    w.flush();
  } catch (const dp::Error& e) {
    threw = std::string(e.what()).find(w.path()) != std::string::npos;
  }
  setrlimit(RLIMIT_FSIZE, &before);
  sigaction(SIGXFSZ, &previous, nullptr);
  EXPECT_TRUE(threw) << "a flush that could not write was not reported naming " << w.path();
  std::filesystem::remove_all(dir);
}
