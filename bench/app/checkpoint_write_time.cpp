// What writing a checkpoint costs beyond writing its bytes: write_tensor_file_atomic (HDF5 builds
// the file in memory, Fletcher-32 on every chunk, then one checked write + fsync + rename) against
// write_file_atomic of a buffer of the same size, alternated in one run.
//   checkpoint_write_time FOLDER [MEGABYTES] [REPEATS]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/checkpoint_file.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FOLDER [MEGABYTES] [REPEATS]\n", argv[0]);
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const std::string folder = argv[1];
  const int64_t megabytes = argc > 2 ? std::stoll(argv[2]) : 100;
  const int repeats = argc > 3 ? std::stoi(argv[3]) : 5;
  // ResNet-18-like: many tensors of assorted sizes, in total `megabytes`.
  dp::io::TensorFile file;
  const int64_t floats = megabytes * 1000 * 1000 / 4;
  for (int64_t left = floats, i = 0; left > 0; ++i) {
    const int64_t n = std::min<int64_t>(left, int64_t{1} << (10 + i % 12));
    file.tensors.emplace_back("model/t" + std::to_string(i), dp::Tensor::full({n}, 0.5f));
    left -= n;
  }
  const std::string h5 = folder + "/bench_checkpoint.h5", raw = folder + "/bench_raw.bin";
  dp::io::write_tensor_file_atomic(h5, file);  // warm-up
  const std::string bytes(std::filesystem::file_size(h5), 'x');
  double t_h5 = 0, t_raw = 0;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    dp::io::write_tensor_file_atomic(h5, file);
    t_h5 += std::chrono::duration<double>(Clock::now() - start).count();
    start = Clock::now();
    dp::io::write_file_atomic(raw, bytes);
    t_raw += std::chrono::duration<double>(Clock::now() - start).count();
  }
  std::printf("%zu tensors, %.1f MB file: checkpoint %.3f s, raw bytes %.3f s (ratio %.2f), %d repeats\n",
              file.tensors.size(), static_cast<double>(bytes.size()) / 1e6, t_h5 / repeats, t_raw / repeats,
              t_h5 / t_raw, repeats);
  std::filesystem::remove(h5);
  std::filesystem::remove(raw);
  return 0;
}
