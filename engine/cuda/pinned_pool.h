// Page-locked host blocks for input batches, cached by size. cudaHostAlloc is slow and
// cudaFreeHost synchronises the whole device, so a training loop must not call them per batch:
// released blocks go back to this pool and are handed out again for the next batch.
#pragma once
#include <cstddef>

namespace dp::cuda {

// A page-locked block of at least nbytes (throws dp::Error when CUDA cannot pin memory).
void* pinned_allocate(size_t nbytes);
// Returns a block from pinned_allocate(nbytes) to the pool (freed when the pool is over its bound).
void pinned_release(void* ptr, size_t nbytes);

}  // namespace dp::cuda
