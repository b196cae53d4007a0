// dp-export CHECKPOINT --format safetensors|hdf5 --output FILE
// Writes the model's weights and BN buffers only (no data parameters, no optimiser state),
// under torchvision/reference names, for deployment and PyTorch users:
//   torchvision.models.resnet18().load_state_dict(safetensors.torch.load_file(FILE))
#include <CLI/CLI.hpp>
#include <cstdio>

#include "engine/error.h"
#include "train/io/checkpoint_schema.h"
#include "train/io/safetensors.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-export: export a checkpoint's model for deployment"};
  std::string checkpoint, format = "safetensors", output;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--format", format, "safetensors or hdf5")->check(CLI::IsMember({"safetensors", "hdf5"}));
  app.add_option("--output,-o", output, "output file")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    // Validated like every reader: the exported tensors are exactly the arch's state dict.
    dp::io::Checkpoint in = dp::io::read_checkpoint(checkpoint);
    const std::vector<std::pair<std::string, dp::Tensor>>& weights = in.model.entries();
    const std::string& arch = in.arch;
    if (format == "safetensors") {
      dp::io::write_safetensors(output, weights, {{"format", "pt"}, {"arch", arch}});
    } else {
      dp::io::TensorFile out;
      out.tensors = weights;
      out.strings["arch"] = arch;
      out.ints["num_classes"] = in.num_classes;
      dp::io::write_tensor_file_atomic(output, out);
    }
    std::printf("dp-export: %zu tensors of %s -> %s (%s)\n", weights.size(), arch.c_str(), output.c_str(),
                format.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-export: error: %s\n", e.what());
    return 1;
  }
}
