// checkpoint_diff A B [--ignore NAME]...: exit 0 when two checkpoint files hold the same datasets
// bit for bit and the same attributes (but the ignored ones), else print what differs and exit 1.
// The end-to-end resume tests (tests/tools/long_run_signal.sh, tests/dist/dp_train_mpi.sh)
// compare a stopped-and-resumed run with an uninterrupted one with it.
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "io/checkpoint_file.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: checkpoint_diff A B [--ignore NAME]...\n");
    return 2;
  }
  std::set<std::string> ignored;
  for (int i = 3; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--ignore") ignored.insert(argv[i + 1]);
  try {
    const dp::io::TensorFile a = dp::io::read_tensor_file(argv[1]), b = dp::io::read_tensor_file(argv[2]);
    int differences = 0;
    auto report = [&](const std::string& what) {
      if (++differences <= 20) std::printf("differs: %s\n", what.c_str());
    };
    for (const auto& [name, t] : a.tensors) {
      if (ignored.count(name)) continue;
      const dp::Tensor* u = b.find(name);
      if (u == nullptr) report("/" + name + " only in " + argv[1]);
      else if (u->shape() != t.shape() || u->dtype() != t.dtype() || std::memcmp(u->raw_data(), t.raw_data(), t.nbytes()) != 0)
        report("/" + name);
    }
    for (const auto& [name, t] : b.tensors)
      if (!ignored.count(name) && a.find(name) == nullptr) report("/" + name + " only in " + argv[2]);
    auto attributes = [&](const auto& x, const auto& y) {
      for (const auto& [k, v] : x)
        if (!ignored.count(k) && (!y.count(k) || y.at(k) != v)) report("attribute " + k);
      for (const auto& [k, v] : y)
        if (!ignored.count(k) && !x.count(k)) report("attribute " + k);
    };
    attributes(a.ints, b.ints);
    attributes(a.floats, b.floats);
    attributes(a.strings, b.strings);
    if (differences == 0) std::printf("the same: %zu datasets and every attribute\n", a.tensors.size());
    return differences == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_diff: %s\n", e.what());
    return 2;
  }
}
