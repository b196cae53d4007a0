#include "io/event_file.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/event_writer.h"

namespace dp::io {

namespace {

struct Record {
  std::string framed;   // the whole record as it is in the file
  std::string payload;  // the Event protobuf
};

// TFRecord: uint64 length, masked crc of the length, payload, masked crc of the payload.
std::vector<Record> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DP_CHECK(in.good(), "cannot read the event file " + path, "check the run folder's tb/ permissions");
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::vector<Record> out;
  size_t at = 0;
  while (at + 12 <= bytes.size()) {
    uint64_t len = 0;
    uint32_t len_crc = 0, data_crc = 0;
    std::memcpy(&len, bytes.data() + at, 8);
    std::memcpy(&len_crc, bytes.data() + at + 8, 4);
    DP_CHECK(len_crc == masked_crc32c(bytes.data() + at, 8),
             fmt::format("{}: the event record at byte {} is damaged (length checksum)", path, at),
             "move the file out of the run's tb/ folder; the other event files are fine");
    if (len > bytes.size() - at - 12 || bytes.size() - at - 12 - len < 4) break;  // cut short: a killed writer
    std::memcpy(&data_crc, bytes.data() + at + 12 + len, 4);
    DP_CHECK(data_crc == masked_crc32c(bytes.data() + at + 12, len),
             fmt::format("{}: the event record at byte {} is damaged (data checksum)", path, at),
             "move the file out of the run's tb/ folder; the other event files are fine");
    out.push_back({bytes.substr(at, 16 + len), bytes.substr(at + 12, len)});
    at += 16 + len;
  }
  return out;
}

// ---- the few protobuf fields read here ----
struct Cursor {
  const std::string& s;
  size_t at = 0;
  bool done() const { return at >= s.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; at < s.size() && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(s[at++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    DP_THROW("an event record holds a malformed varint", "the event file is damaged");
  }
  // Reads one field: its number, and its bytes when length-delimited.
  int field(std::string* bytes) {
    const uint64_t key = varint();
    const int wire = static_cast<int>(key & 7);
    if (wire == 0) varint();
    else if (wire == 1) at += 8;
    else if (wire == 5) at += 4;
    else if (wire == 2) {
      const uint64_t n = varint();
      DP_CHECK(n <= s.size() - std::min(at, s.size()), "an event record's field runs past its end", "the event file is damaged");
      if (bytes) *bytes = s.substr(at, n);
      at += n;
    } else {
      DP_THROW(fmt::format("an event record holds wire type {}", wire), "the event file is damaged");
    }
    return static_cast<int>(key >> 3);
  }
};

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
// Summary { repeated Value value = 1; }  Value { string tag = 1; ... }
EventEntry decode(const std::string& payload) {
  EventEntry e;
  Cursor c{payload};
  while (!c.done()) {
    const size_t start = c.at;
    std::string bytes;
    const int f = c.field(&bytes);
    if (f == 2) {
      Cursor step{payload, start};
      step.varint();  // the key
      e.step = static_cast<int64_t>(step.varint());
    } else if (f == 5) {
      Cursor summary{bytes};
      std::string value;
      if (!summary.done() && summary.field(&value) == 1) {
        Cursor v{value};
        std::string tag;
        while (!v.done())
          if (v.field(&tag) == 1) {
            e.tag = tag;
            break;
          }
      }
    }
  }
  return e;
}

}  // namespace

std::vector<EventEntry> read_event_entries(const std::string& path) {
  std::vector<EventEntry> out;
  for (const Record& r : read_records(path)) out.push_back(decode(r.payload));
  return out;
}

int64_t trim_event_file(const std::string& path, const std::function<bool(const std::string&, int64_t)>& keep) {
  const std::vector<Record> records = read_records(path);
  std::string kept;
  int64_t dropped = 0;
  for (const Record& r : records) {
    const EventEntry e = decode(r.payload);
    if (e.tag.empty() || keep(e.tag, e.step)) kept += r.framed;
    else ++dropped;
  }
  size_t whole = 0;
  for (const Record& r : records) whole += r.framed.size();
  if (dropped == 0 && whole == std::filesystem::file_size(path)) return 0;
  write_file_atomic(path, kept);
  return dropped;
}

}  // namespace dp::io
