#include "app/checkpoint_commit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace dp::app {

namespace fs = std::filesystem;

namespace {

const std::string kJournal = ".commit-journal";
const std::string kStagedPrefix = ".staged.";
const std::string kJournalEnd = "end";

const char* kDiskHint = "check that the run folder is writable and its disk has room; the previous checkpoints are intact";

std::string in(const std::string& folder, const std::string& name) { return (fs::path(folder) / name).string(); }

void fsync_or_throw(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  DP_CHECK(fd >= 0, fmt::format("cannot open {} to sync it: {}", path, std::strerror(errno)), kDiskHint);
  const int synced = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  DP_CHECK(synced == 0, fmt::format("fsync of {} failed: {}", path, std::strerror(err)), kDiskHint);
}

void rename_or_throw(const std::string& from, const std::string& to) {
  DP_CHECK(::rename(from.c_str(), to.c_str()) == 0,
           fmt::format("cannot rename {} to {}: {}", from, to, std::strerror(errno)), kDiskHint);
}

void remove_if_there(const std::string& path) {
  DP_CHECK(::unlink(path.c_str()) == 0 || errno == ENOENT,
           fmt::format("cannot delete {}: {}", path, std::strerror(errno)), kDiskHint);
}

// `to` becomes another name of `from` (the same bytes, no copy); a copy where the file system has
// no hard links.
void link_or_copy(const std::string& from, const std::string& to) {
  remove_if_there(to);
  if (::link(from.c_str(), to.c_str()) == 0) return;
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  DP_CHECK(!ec, fmt::format("cannot copy {} to {}: {}", from, to, ec.message()), kDiskHint);
  fsync_or_throw(to, false);
}

struct Journal {
  std::vector<std::pair<std::string, std::string>> renames;  // staged name -> final name
  std::vector<std::string> removals;
};

void write_journal(const std::string& folder, const Journal& j) {
  const std::string tmp = in(folder, kJournal + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& [from, to] : j.renames) out << "rename\t" << from << '\t' << to << '\n';
    for (const auto& name : j.removals) out << "remove\t" << name << '\n';
    out << kJournalEnd << '\n';
    out.flush();
    DP_CHECK(out.good(), fmt::format("cannot write {}", tmp), kDiskHint);
  }
  fsync_or_throw(tmp, false);
  rename_or_throw(tmp, in(folder, kJournal));
  fsync_or_throw(folder, true);
}

// A journal is whole (it ends with "end") or was never renamed into place.
bool read_journal(const std::string& folder, Journal& j) {
  std::ifstream file(in(folder, kJournal));
  if (!file) return false;
  bool ended = false;
  for (std::string line; std::getline(file, line);) {
    std::istringstream fields(line);
    std::string kind, a, b;
    std::getline(fields, kind, '\t');
    std::getline(fields, a, '\t');
    std::getline(fields, b, '\t');
    if (kind == "rename" && !a.empty() && !b.empty()) j.renames.emplace_back(a, b);
    else if (kind == "remove" && !a.empty()) j.removals.push_back(a);
    else if (kind == kJournalEnd) ended = true;
  }
  return ended;
}

// Step 3, which may be repeated any number of times: a rename whose source is gone was done.
void apply(const std::string& folder, const Journal& j, const CommitProbe& probe) {
  for (const auto& [from, to] : j.renames) {
    if (fs::exists(in(folder, from))) io::rename_checked(in(folder, from), in(folder, to));
    if (probe) probe("renamed " + to);
  }
  for (const auto& name : j.removals) remove_if_there(in(folder, name));
  io::sync_folder_checked(in(folder, j.renames.empty() ? "." : j.renames.front().second));
  if (probe) probe("removed");
  remove_if_there(in(folder, kJournal));
  fsync_or_throw(folder, true);
}

std::vector<std::string> staged_files(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kStagedPrefix, 0) == 0 && name.find(".tmp.") == std::string::npos) out.push_back(name);
  }
  return out;
}

}  // namespace

void commit_checkpoint(const std::string& folder, const io::TensorFile& file, const CommitPlan& plan,
                       const CommitProbe& probe) {
  DP_CHECK(!plan.targets.empty(), "commit_checkpoint: nothing to save", "name at least one target file");
  for (const std::string& name : staged_files(folder)) remove_if_there(in(folder, name));  // an earlier failed save
  Journal j;
  for (const std::string& target : plan.targets) j.renames.emplace_back(kStagedPrefix + target, target);
  j.removals = plan.remove;
  if (probe) probe("staging");
  try {
    // Written straight to its staged name (errors name the final one): without a journal a staged
    // file is discarded anyway, so it needs no temporary of its own.
    io::stage_tensor_file(in(folder, j.renames[0].second), in(folder, j.renames[0].first), file).keep();
    if (probe) probe("staged");
    for (size_t i = 1; i < j.renames.size(); ++i)
      link_or_copy(in(folder, j.renames[0].first), in(folder, j.renames[i].first));
    fsync_or_throw(folder, true);
    if (probe) probe("linked");
    write_journal(folder, j);
  } catch (...) {
    // Nothing was committed: the previous files stand; leave no staged copy behind.
    for (const auto& [staged, target] : j.renames) ::unlink(in(folder, staged).c_str());
    ::unlink(in(folder, kJournal + ".tmp").c_str());
    ::unlink(in(folder, kJournal).c_str());  // in place, but its folder's fsync failed
    throw;
  }
  if (probe) probe("journal");
  apply(folder, j, probe);
  if (probe) probe("committed");
}

std::string recover_commit(const std::string& folder) {
  if (!fs::is_directory(folder)) return "";
  Journal j;
  if (read_journal(folder, j)) {
    apply(folder, j, {});
    std::string names;
    for (const auto& [from, to] : j.renames) names += (names.empty() ? "" : ", ") + to;
    return fmt::format("finished the save of {} that was interrupted after its journal was written", names);
  }
  std::vector<std::string> staged = staged_files(folder);
  remove_if_there(in(folder, kJournal));  // a journal without its end was never renamed into place
  remove_if_there(in(folder, kJournal + ".tmp"));
  for (const std::string& name : staged) remove_if_there(in(folder, name));
  if (staged.empty()) return "";
  fsync_or_throw(folder, true);
  return fmt::format("discarded {} file(s) of a save that was interrupted before it was committed; the previous "
                     "checkpoints are intact",
                     staged.size());
}

}  // namespace dp::app
