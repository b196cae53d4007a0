#include "data/csv_table.h"

#include <csv.h>
#include <fmt/format.h>

#include <memory>

#include "data/file_io.h"
#include "engine/error.h"

namespace dp::data {

namespace {

// libcsv's callbacks collect fields into rows.
struct Collector {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> current;
};

void on_field(void* field, size_t size, void* data) {
  static_cast<Collector*>(data)->current.emplace_back(static_cast<const char*>(field), size);
}

void on_row(int /*terminator*/, void* data) {
  auto* c = static_cast<Collector*>(data);
  c->rows.push_back(std::move(c->current));
  c->current.clear();
}

}  // namespace

size_t CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  std::string known;
  for (const auto& h : header) known += (known.empty() ? "" : ", ") + h;
  DP_THROW(fmt::format("'{}' has no column '{}'", path, name), "its columns are: " + known);
}

std::string CsvTable::where(size_t row) const { return fmt::format("'{}' line {}", path, row + 2); }

CsvTable read_csv_table(const std::string& path) {
  const std::string text = read_file_text(path);
  csv_parser parser;
  // Strict: a stray quote inside an unquoted field, or a quote still open at the end, is an error.
  DP_CHECK(csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) == 0, "libcsv could not initialise a parser", "out of memory?");
  std::unique_ptr<csv_parser, void (*)(csv_parser*)> owner(&parser, csv_free);
  Collector c;
  const size_t parsed = csv_parse(&parser, text.data(), text.size(), on_field, on_row, &c);
  DP_CHECK(parsed == text.size() && csv_fini(&parser, on_field, on_row, &c) == 0,
           fmt::format("'{}' is not a valid CSV file near line {} ({})", path, c.rows.size() + 1,
                       csv_strerror(csv_error(&parser))),
           "a field that holds a comma, quote or line break must be quoted, its quotes doubled");
  CsvTable t;
  t.path = path;
  DP_CHECK(!c.rows.empty(), fmt::format("'{}' is empty", path), "it needs a header row");
  t.header = std::move(c.rows.front());
  for (size_t r = 1; r < c.rows.size(); ++r) {
    DP_CHECK(c.rows[r].size() == t.header.size(),
             fmt::format("{} has {} fields, the header has {}", t.where(r - 1), c.rows[r].size(), t.header.size()),
             "fix or regenerate the file (fields holding commas must be quoted)");
    t.rows.push_back(std::move(c.rows[r]));
  }
  return t;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos && (text.empty() || (text.front() != ' ' && text.back() != ' ')))
    return text;
  std::string out(text.size() * 2 + 2, '\0');
  out.resize(csv_write(out.data(), out.size(), text.data(), text.size()));
  return out;
}

}  // namespace dp::data
