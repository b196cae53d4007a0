// dp-export CHECKPOINT --output FILE [--format safetensors|hdf5]   (default: from FILE's extension)
// Writes the model's weights and BN buffers only (no data parameters, no optimiser state),
// under torchvision/reference names, for deployment and PyTorch users:
//   torchvision.models.resnet18().load_state_dict(safetensors.torch.load_file(FILE))
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <cstdio>
#include <filesystem>

#include "engine/error.h"
#include "app/checkpoint_schema.h"
#include "io/safetensors.h"
#include "tools/tool_common.h"

int main(int argc, char** argv) {
  CLI::App app{"dp-export: export a checkpoint's model for deployment"};
  std::string checkpoint, format, output;
  app.add_option("checkpoint", checkpoint, "checkpoint.h5 or best.h5 from a run")->required();
  app.add_option("--format", format, "safetensors or hdf5 (default: from the output's extension)")
      ->check(CLI::IsMember({"safetensors", "hdf5"}));
  app.add_option("--output,-o", output, "output file: .safetensors, or .h5/.hdf5")->required();
  dp::tools::add_version_flag(app, "dp-export");
  CLI11_PARSE(app, argc, argv);
  try {
    // The extension decides, so `-o model.h5` never writes safetensors; a contradicting --format is refused.
    const std::string ext = std::filesystem::path(output).extension().string();
    const std::string implied = ext == ".safetensors" ? "safetensors" : (ext == ".h5" || ext == ".hdf5") ? "hdf5" : "";
    if (format.empty()) {
      DP_CHECK(!implied.empty(), fmt::format("cannot tell the format of '{}' from its extension", output),
               "name it .safetensors or .h5, or give --format safetensors|hdf5");
      format = implied;
    }
    DP_CHECK(implied.empty() || implied == format,
             fmt::format("--format {} contradicts the output name '{}' ({} by its extension)", format, output, implied),
             fmt::format("drop --format, or name the file .{}", format == "hdf5" ? "h5" : "safetensors"));
    // Validated like every reader: the exported tensors are exactly the arch's state dict.
    dp::app::Checkpoint in = dp::app::read_checkpoint(checkpoint);
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
