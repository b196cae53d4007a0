// Small file helpers shared by the datasets; every failure names the path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dp::data {

std::vector<uint8_t> read_file_bytes(const std::string& path);
std::string read_file_text(const std::string& path);
// Lines without trailing '\r' / '\n'.
std::vector<std::string> read_lines(const std::string& path);
// Splits a CSV line on commas (no quoting: the project's label files need none).
std::vector<std::string> split_csv_line(const std::string& line);
// Splits on runs of tabs or spaces.
std::vector<std::string> split_whitespace(const std::string& line);

}  // namespace dp::data
