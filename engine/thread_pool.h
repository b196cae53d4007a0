// A fixed pool of worker threads for CPU ops.
//
// parallel_for splits [begin, end) into chunks of at least `grain` iterations. Ops must write
// disjoint outputs per chunk, or reduce per fixed chunk in a fixed order, so that results do
// not depend on the number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace dp {

// Threads used by CPU ops (default: DP_NUM_THREADS, else the number of cores).
int num_threads();
void set_num_threads(int n);

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace dp
