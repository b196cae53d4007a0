// The run folder (run.output): one run per folder. A folder that already holds a run is only
// continued (--resume) or explicitly replaced (--overwrite); its files are never silently
// overwritten or appended to.
#pragma once
#include <memory>
#include <string>

#include "app/config.h"
#include "app/run_lock.h"

namespace dp::app {

enum class FolderUse {
  kFresh,      // the folder must not hold a run yet (missing or empty folders are fine)
  kResume,     // continue the run that is there
  kOverwrite,  // move the run that is there aside, then start a new one
};

// The current UTC time in strftime's `format` (folder names, the lock file's record).
std::string utc_now(const char* format);

// True when `folder` holds files a run writes (checkpoint.h5, best.h5, metrics.jsonl, tb/, config.toml).
bool holds_run(const std::string& folder);

// Creates run.output for `use`. kFresh throws dp::Error (naming --resume and --overwrite) when the
// folder holds a run; kOverwrite renames such a folder to FOLDER.replaced-YYYYmmdd-HHMMSS (nothing
// is deleted) and returns that name; otherwise returns "". With `lock` (the writing process), the
// folder's lock is taken first, into *lock (app/run_lock.h): a folder another dp-train writes is
// refused, naming it, whatever `use` says.
std::string prepare_run_folder(const std::string& folder, FolderUse use, std::unique_ptr<RunLock>* lock = nullptr);

// The part of that the writing process does before anything slow (building the datasets): creates
// the folder, takes its lock into `lock` (refused, naming the holder, when another dp-train writes
// it) and refuses a fresh start on a folder that holds a run. prepare_run_folder then keeps the
// lock it finds in *lock.
void lock_run_folder(const std::string& folder, FolderUse use, std::unique_ptr<RunLock>& lock);

// Writes the resolved configuration as FOLDER/config.toml (atomically), so the folder says how it
// was made: `dp-train FOLDER/config.toml` repeats the run.
void write_run_config(const std::string& folder, const Config& config);

}  // namespace dp::app
