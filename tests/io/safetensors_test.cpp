#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "kernels/ops.h"
#include "io/safetensors.h"

using namespace dp;

namespace {
std::string temp_path(const char* name) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dp-st-XXXXXX").string();
  return std::string(mkdtemp(tmpl.data())) + "/" + name;
}
}  // namespace

TEST(Safetensors, RoundTrip) {
  std::string path = temp_path("w.safetensors");
  std::vector<std::pair<std::string, Tensor>> in = {
      {"conv1.weight", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
      {"bn1.num_batches_tracked", Tensor::from_vector(std::vector<int64_t>{7}, {})}};
  io::write_safetensors(path, in, {{"format", "pt"}});
  auto out = io::read_safetensors(path);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, "conv1.weight");
  EXPECT_EQ(out[0].second.shape(), (Shape{2, 3}));
  EXPECT_EQ(out[0].second.to_float_vector()[5], 6.0f);
  EXPECT_EQ(out[1].second.dtype(), DType::Int64);
  EXPECT_EQ(out[1].second.dim(), 0);
  // The header is JSON padded to 8 bytes, as the reference implementation requires.
  std::ifstream f(path, std::ios::binary);
  uint64_t n;
  f.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

// A channels-last tensor is written in logical (NCHW) order, as PyTorch users read it.
TEST(Safetensors, ChannelsLastIsWrittenInLogicalOrder) {
  std::string path = temp_path("cl.safetensors");
  std::vector<float> v(2 * 3 * 2 * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  Tensor nchw = Tensor::from_vector(v, {2, 3, 2, 2});
  io::write_safetensors(path, {{"x", kernels::convert(nchw, DType::Float32, MemoryFormat::ChannelsLast)}});
  auto out = io::read_safetensors(path);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].second.is_channels_last());
  EXPECT_EQ(out[0].second.to_float_vector(), v);
}

TEST(Safetensors, ReadsHalfAndBfloat16AsFloat32) {
  std::string path = temp_path("h.safetensors");
  std::string header = R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}})";
  uint64_t n = header.size();
  uint16_t data[3] = {0x3C00 /*1.0*/, 0xC000 /*-2.0*/, 0x4049 /*bf16 3.140625*/};
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data), 6);
  out.close();
  auto t = io::read_safetensors(path);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].second.to_float_vector(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(t[1].second.to_float_vector()[0], 3.140625f);
}

TEST(Safetensors, DamagedFilesGiveClearErrors) {
  std::string path = temp_path("bad.safetensors");
  std::ofstream(path, std::ios::binary) << "not a safetensors file at all";
  EXPECT_THROW(io::read_safetensors(path), Error);
  EXPECT_THROW(io::read_safetensors(path + ".absent"), Error);
}

namespace {

// A safetensors file with the given JSON header and `data_bytes` zero bytes of data.
std::string with_header(const std::string& name, const std::string& json, size_t data_bytes, uint64_t length = 0) {
  std::string path = temp_path(name.c_str());
  std::ofstream out(path, std::ios::binary);
  uint64_t n = length ? length : json.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << json << std::string(data_bytes, '\0');
  return path;
}

// Issue 13: the reader must refuse these with a dp::Error naming the file (not accept them,
// nor let std::length_error / nlohmann::type_error escape).
void expect_named_error(const std::string& path, const std::string& expected = "") {
  try {
    io::read_safetensors(path);
    ADD_FAILURE() << path << " accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": raw " << typeid(e).name() << ": " << e.what();
  }
}

}  // namespace

TEST(Safetensors, OverflowingShapesAreRefused) {
  // 2^62 * 4 elements overflow to 0, matching the 0 bytes stored.
  expect_named_error(with_header("overflow.safetensors",
                                 R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0),
                     "'w'");
  expect_named_error(with_header("negative.safetensors",
                                 R"({"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}})", 16), "'w'");
}

TEST(Safetensors, AHugeHeaderLengthIsRefused) {
  expect_named_error(with_header("huge.safetensors", "{}", 8, ~uint64_t{0} - 3), "header length");
  expect_named_error(with_header("big.safetensors", "{}", 8, uint64_t{1} << 40), "header length");
}

TEST(Safetensors, WrongJsonTypesAreRefused) {
  expect_named_error(with_header("types1.safetensors", R"({"w":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", 4), "'w'");
  expect_named_error(with_header("types2.safetensors", R"({"w":{"dtype":"F32","shape":"x","data_offsets":[0,4]}})", 4), "'w'");
  expect_named_error(with_header("types3.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "'w'");
  expect_named_error(with_header("types4.safetensors", R"({"w":[1,2]})", 4), "'w'");
  expect_named_error(with_header("types5.safetensors", R"([1,2,3])", 4));
  expect_named_error(with_header("offsets.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4), "'w'");
  expect_named_error(temp_path("").substr(0, temp_path("").size() - 1), "not a regular file");
}
