// A test seam for durable writes: makes one kind of file operation fail as a failing or full disk
// would, so tests can show that every result is checked and that nothing already written is lost.
//
//   DP_IO_FAULT=OP[:NAME]   OP: write (fails with ENOSPC: a full disk), fsync, close, rename,
//                           dirsync (the folder's fsync after a rename) (fail with EIO)
//                           NAME: only the file of that name (e.g. checkpoint.h5, config.toml);
//                           without it, every file written through io/atomic_file.h
//
// The variable is read once, at the first file operation; tests inside one process call
// set_io_fault instead. Nothing else reads it: an unset variable costs one getenv per process.
#pragma once
#include <cstddef>
#include <string>

namespace dp::io {

enum class IoOp { kWrite, kFsync, kClose, kRename, kDirSync };

// Replaces the fault (the same syntax as DP_IO_FAULT; "" clears it). Throws dp::Error on a bad spec.
void set_io_fault(const std::string& spec);

// The errno that `op` on the file whose final name is `target` must fail with, or 0.
int injected_io_error(IoOp op, const std::string& target);

// write() of all `size` bytes to `fd` (short writes continued, EINTR retried), each attempt
// subject to the injected write fault for `target`: 0, or the errno of the write that failed.
int write_fully(int fd, const void* data, size_t size, const std::string& target);

}  // namespace dp::io
