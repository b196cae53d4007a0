// One commit per save: the files one save produces (checkpoint.h5, best.h5 when the epoch
// improved, a retained copy checkpoint-epochNNNN.h5) replace the previous ones together or not at
// all, and copies that fall out of retention go in the same commit. A kill at any point leaves,
// after recover_commit(), either the old set or the new one, never a mix (e.g. best.h5 one
// improvement behind a checkpoint.h5 that claims the newer best).
//
// A save, in the run folder:
//   1. stage    the checkpoint is written (atomically, fsynced) as .staged.checkpoint.h5; every
//               other file of the save is a hard link to it (a copy where links are refused).
//   2. journal  .commit-journal lists the renames (staged -> final) and the deletions; it is
//               written to a temporary, fsynced and renamed, so it exists whole or not at all.
//   3. apply    the renames, the deletions, an fsync of the folder; then the journal is removed.
// recover_commit() finishes a save whose journal exists (each step can be repeated) and deletes
// staged files that have no journal (a save that never reached step 2 changed nothing).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint_file.h"

namespace dp::app {

struct CommitPlan {
  std::vector<std::string> targets;  // file names in the folder that receive this checkpoint
  std::vector<std::string> remove;   // file names in the folder to delete in the same commit
};

// A test seam: called with the name of each point of a save ("staging", "staged", "linked",
// "journal", "renamed <name>", "removed", "committed"), so a test can end the process there.
using CommitProbe = std::function<void(const std::string& point)>;

// Saves `file` as plan.targets in `folder`, as one commit (see above). Throws dp::Error naming the
// file and the folder when a write, rename or fsync fails; the previous files stay as they were
// unless the journal was written (then recover_commit() completes the save).
void commit_checkpoint(const std::string& folder, const io::TensorFile& file, const CommitPlan& plan,
                       const CommitProbe& probe = {});

// Finishes or discards an interrupted save in `folder` (call before reading its checkpoints, in
// the one process that writes the folder). Returns what it did, "" when there was nothing to do.
std::string recover_commit(const std::string& folder);

}  // namespace dp::app
