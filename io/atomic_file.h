// Replacing a file durably. The new content goes to a temporary next to the target
// ("<target>.tmp.<pid>"), is written, fsynced and closed, then renamed over the target, and the
// folder is fsynced; every result is checked. A failure throws dp::Error naming the file (a full
// disk names the folder, the space needed and the space free) after removing the temporary, and
// the target is as it was: a crash, a full disk or a failing fsync never costs the last good file.
//
// StagedFile splits the two halves, so that several files can be written first and renamed
// together (one commit for a checkpoint and its companions: app/checkpoint_commit.h, which renames
// with rename_checked and syncs the folder with sync_folder_checked). Errors and injected faults
// (io/io_fault.h) always name the target, the file's final name, never a temporary.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace dp::io {

// "<target>.tmp.<pid>": the temporary a write of `target` by this process uses.
std::string temporary_name(const std::string& target);

class StagedFile {
 public:
  // Writes `size` bytes to the temporary, fsyncs and closes it. Throws (temporary removed) on failure.
  StagedFile(std::string target, const void* data, size_t size);
  // The same with a temporary of the caller's choosing, for a caller that renames it itself (keep()).
  StagedFile(std::string target, std::string temporary, const void* data, size_t size);
  StagedFile(StagedFile&& other) noexcept;
  StagedFile& operator=(StagedFile&&) = delete;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();  // removes the temporary unless committed

  // Renames the temporary over the target, then fsyncs the folder so the rename survives a power
  // loss. A failed rename leaves the target as it was; a failed folder fsync is reported too (the
  // new file is in place then, complete and synced, but its name may not survive a crash).
  void commit();
  // Hands the temporary over to the caller, who renames it with rename_checked (or deletes it).
  void keep() { pending_ = false; }

  const std::string& target() const { return target_; }
  const std::string& temporary() const { return temporary_; }

 private:
  std::string target_, temporary_;
  size_t size_ = 0;
  bool pending_ = false;  // the temporary exists and is not renamed yet
};

// rename(from, target), then, as a separate step, an fsync of target's folder; failures throw as
// StagedFile's do, naming `target`.
void rename_checked(const std::string& from, const std::string& target);
void sync_folder_checked(const std::string& target);

inline void write_file_atomic(const std::string& target, std::string_view bytes) {
  StagedFile(target, bytes.data(), bytes.size()).commit();
}

// Removes the "<name>.tmp.<pid>" files in `folder` whose writer process no longer exists (left by a
// kill -9 during a write); returns how many. Files of live processes stay.
int remove_stale_temporaries(const std::string& folder);

}  // namespace dp::io
