#include "app/run_folder.h"

#include <fmt/format.h>

#include <array>
#include <ctime>
#include <filesystem>

#include "engine/error.h"
#include "io/atomic_file.h"

namespace dp::app {

namespace fs = std::filesystem;

namespace {

// What a run writes into its folder (dp-inspect's outputs alone do not make a run).
constexpr std::array<const char*, 5> kRunFiles = {"checkpoint.h5", "best.h5", "metrics.jsonl", "tb", "config.toml"};

// Creates run.output (and its parents), or says why it cannot be the run's folder.
void make_folder(const std::string& folder) {
  std::error_code made;
  fs::create_directories(folder, made);
  DP_CHECK(!made && fs::is_directory(folder),
           fmt::format("config: run.output = \"{}\" cannot be used as the run's folder: {}", folder,
                       made ? made.message() : "it is not a directory"),
           "set run.output to a writable folder (not under a regular file, nor in /proc or /sys)");
}

}  // namespace

std::string utc_now(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::array<char, 64> buf{};
  std::strftime(buf.data(), buf.size(), format, &tm);
  return buf.data();
}

bool holds_run(const std::string& folder) {
  for (const char* name : kRunFiles)
    if (fs::exists(fs::path(folder) / name)) return true;
  return false;
}

namespace {

void refuse_a_fresh_start_on_a_run(const std::string& folder, FolderUse use) {
  DP_CHECK(use != FolderUse::kFresh || !holds_run(folder),
           fmt::format("run.output = \"{}\" already holds a run", folder),
           fmt::format("continue it with --resume {}/checkpoint.h5, start a new one with --overwrite (the old "
                       "folder is moved aside, nothing is deleted), or choose another run.output",
                       folder));
}

}  // namespace

void lock_run_folder(const std::string& folder, FolderUse use, std::unique_ptr<RunLock>& lock) {
  make_folder(folder);
  lock = std::make_unique<RunLock>(folder);
  refuse_a_fresh_start_on_a_run(folder, use);
}

std::string prepare_run_folder(const std::string& folder, FolderUse use, std::unique_ptr<RunLock>* lock) {
  // The lock first: nothing in a folder another dp-train writes is judged, let alone moved aside.
  if (lock && !*lock) lock_run_folder(folder, use, *lock);
  else refuse_a_fresh_start_on_a_run(folder, use);
  std::string moved;
  if (use == FolderUse::kOverwrite && holds_run(folder)) {
    std::string target = folder;
    while (!target.empty() && target.back() == '/') target.pop_back();
    target += ".replaced-" + utc_now("%Y%m%d-%H%M%S");
    for (int i = 2; fs::exists(target); ++i) target = fmt::format("{}-{}", target.substr(0, target.rfind('-')), i);
    std::error_code ec;
    fs::rename(folder, target, ec);
    DP_CHECK(!ec, fmt::format("could not move the old run {} aside to {}: {}", folder, target, ec.message()),
             "move or remove it yourself, or choose another run.output");
    moved = target;
    make_folder(folder);
    if (lock) (*lock)->move_to(folder);  // its lock file went aside with the old run
  }
  make_folder(folder);
  return moved;
}

void write_run_config(const std::string& folder, const Config& config) {
  const fs::path path = fs::path(folder) / "config.toml";
  io::write_file_atomic(path.string(),
                        "# The resolved configuration of this run (every key, defaults included), written by dp-train.\n"
                        "# Repeat the run with: dp-train " + path.string() + " --overwrite\n" + config.resolved_toml());
}

}  // namespace dp::app
