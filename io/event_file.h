// Reading back TensorBoard event files (TFRecord framing, io/event_writer.h), and trimming them:
// a run resumed from a checkpoint drops the events written after that checkpoint by the run that
// was stopped or killed, so that TensorBoard shows each step once (it would otherwise draw both
// the old and the repeated points).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dp::io {

struct EventEntry {
  int64_t step = 0;
  std::string tag;  // the summary value's tag; "" for an event without a summary (the file version)
};

// Every event of `path` in file order. A record cut short at the end (a writer killed mid-record)
// ends the list; a damaged record (its checksum does not match) throws dp::Error naming the file.
std::vector<EventEntry> read_event_entries(const std::string& path);

// Rewrites `path` (through a temporary file and a rename) keeping the events without a summary
// and those for which keep(tag, step) is true, dropping a record cut short at the end. Returns the
// number of events dropped; the file is left as it was when nothing is dropped.
int64_t trim_event_file(const std::string& path, const std::function<bool(const std::string&, int64_t)>& keep);

}  // namespace dp::io
