#include "data_test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <turbojpeg.h>

namespace dp::data::test_util {

namespace fs = std::filesystem;

std::string shared_data_dir() {
  const char* env = std::getenv("DP_SHARED_DIR");
  fs::path dir = env ? fs::path(env) / "data" : fs::path("../shared/data");
  return fs::is_directory(dir) ? dir.string() : std::string();
}

std::string source_dir() {
  const char* env = std::getenv("DP_SOURCE_DIR");
  return env ? std::string(env) : std::string(".");
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "dp-data-test-XXXXXX").string();
  if (char* made = mkdtemp(pattern.data())) path_ = made;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) fs::remove_all(path_, ignored);
}

static std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char ch : text) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return quoted + "'";
}

bool extract_tar(const std::string& tar, const std::string& dir,
                 const std::vector<std::string>& patterns) {
  std::string command = "tar -xf " + quote(tar) + " -C " + quote(dir);
  if (!patterns.empty()) {
    command += " --wildcards";
    for (const auto& p : patterns) command += " " + quote(p);
  }
  return std::system(command.c_str()) == 0;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

namespace {

// Offset of the first SOFn marker (FFC0..FFCF except DHT C4, JPG C8, DAC CC), or npos.
size_t find_sof(const std::vector<unsigned char>& j) {
  size_t i = 2;
  while (i + 4 <= j.size() && j[i] == 0xFF) {
    const unsigned char m = j[i + 1];
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return i;
    i += 2 + (size_t{j[i + 2]} << 8 | j[i + 3]);
  }
  return std::string::npos;
}

}  // namespace

std::vector<unsigned char> make_jpeg(int width, int height) {
  std::vector<unsigned char> rgb(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<unsigned char>(i * 7);
  tjhandle h = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h, rgb.data(), width, 0, height, TJPF_RGB, &out, &size, TJSAMP_420, 90, 0) != 0)
    throw std::runtime_error(tjGetErrorStr2(h));
  std::vector<unsigned char> jpeg(out, out + size);
  tjFree(out);
  tjDestroy(h);
  return jpeg;
}

std::vector<unsigned char> jpeg_without_sof(const std::vector<unsigned char>& jpeg) {
  std::vector<unsigned char> j = jpeg;
  const size_t at = find_sof(j);
  if (at == std::string::npos) throw std::runtime_error("no SOF marker");
  const size_t length = size_t{j[at + 2]} << 8 | j[at + 3];
  j.erase(j.begin() + static_cast<std::ptrdiff_t>(at), j.begin() + static_cast<std::ptrdiff_t>(at + 2 + length));
  return j;
}

std::vector<unsigned char> jpeg_with_sof_size(const std::vector<unsigned char>& jpeg, int width, int height) {
  std::vector<unsigned char> j = jpeg;
  const size_t at = find_sof(j);
  if (at == std::string::npos) throw std::runtime_error("no SOF marker");
  // FFCn, length(2), precision(1), height(2), width(2)
  j[at + 5] = static_cast<unsigned char>(height >> 8);
  j[at + 6] = static_cast<unsigned char>(height);
  j[at + 7] = static_cast<unsigned char>(width >> 8);
  j[at + 8] = static_cast<unsigned char>(width);
  return j;
}

std::vector<unsigned char> jpeg_tables_only(const std::vector<unsigned char>& jpeg) {
  std::vector<unsigned char> j = jpeg_without_sof(jpeg);
  for (size_t i = 2; i + 1 < j.size(); ++i)
    if (j[i] == 0xFF && j[i + 1] == 0xDA) {
      j.resize(i);
      break;
    }
  j.push_back(0xFF);
  j.push_back(0xD9);
  return j;
}

}  // namespace dp::data::test_util
