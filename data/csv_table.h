// CSV files with RFC 4180 quoting (fields holding commas, quotes or line breaks), read and written
// through libcsv, for files whose fields are free text, such as the relabel file's image paths
// (app/relabel.h). The project's plain label files keep data/file_io.h's simple splitter.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dp::data {

struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // data rows in file order, each as long as the header

  // The header's column `name`; throws naming the file and listing its columns when absent.
  size_t column(const std::string& name) const;
  // "FILE line N" for data row `row` (0-based), for messages; exact unless a field spans lines.
  std::string where(size_t row) const;
};

// Reads `path` (header row first). Throws dp::Error naming the file for an unreadable file, a
// malformed quote, or a row whose field count differs from the header's (naming its line).
CsvTable read_csv_table(const std::string& path);

// `text` as one CSV field: quoted (and its quotes doubled) exactly when it needs to be.
std::string csv_field(const std::string& text);

}  // namespace dp::data
