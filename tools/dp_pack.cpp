// dp-pack SOURCE -o OUT [--layout cifar10-jpeg|imagefolder] [--index-order CSV] [--label-columns A,B]
//         [--train-per-class K] [--test-per-class K]
// Packs an image-folder dataset into the packed layout of data/packed.h: per split, one file of
// the images' bytes back to back and a CSV index, read by data.dataset = "packed".
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "data/image_folder.h"
#include "data/packed.h"
#include "engine/error.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"dp-pack: pack an image-folder dataset into one image file and one CSV index per split"};
  std::string source, out, layout = "cifar10-jpeg", index_order;
  std::vector<std::string> label_columns;
  int64_t train_per_class = 0, test_per_class = 0;
  app.add_option("source", source,
                 "cifar10-jpeg: the folder holding train/<class>/ and test/<class>/; "
                 "imagefolder: the folder holding train/<class>/ and val/<class>/")->required();
  app.add_option("-o,--output", out, "folder to write classes.txt, train.jpgs/.csv, test.jpgs/.csv into")->required();
  app.add_option("--layout", layout, "cifar10-jpeg (CIFAR-10 class order) or imagefolder (sorted class folders)")
      ->check(CLI::IsMember({"cifar10-jpeg", "imagefolder"}));
  app.add_option("--index-order", index_order,
                 "CSV (orig_index, path) fixing the training split's order, e.g. cifar10n-labels.csv "
                 "(CIFAR's original training order)");
  app.add_option("--label-columns", label_columns,
                 "columns of --index-order to copy into train.csv, e.g. worse_label,aggre_label,random_label1")
      ->delimiter(',');
  app.add_option("--train-per-class", train_per_class, "keep the first K training images of each class (0: all)");
  app.add_option("--test-per-class", test_per_class, "keep the first K test images of each class (0: all)");
  CLI11_PARSE(app, argc, argv);
  try {
    DP_CHECK(label_columns.empty() || !index_order.empty(), "--label-columns needs --index-order",
             "pass the CSV that holds the label columns, e.g. --index-order cifar10n-labels.csv");
    for (const bool train : {true, false}) {
      std::shared_ptr<dp::data::ImageFolderDataset> ds;
      if (layout == "cifar10-jpeg") {
        ds = dp::data::cifar10_jpeg_folder(source, train, train ? index_order : "");
      } else {
        dp::data::ImageFolderOptions o;
        o.root = (fs::path(source) / (train ? "train" : "val")).string();
        if (train) o.index_order_csv = index_order;
        ds = std::make_shared<dp::data::ImageFolderDataset>(o);
      }
      dp::data::PackOptions po;
      po.per_class = train ? train_per_class : test_per_class;
      po.source_root = source;
      if (train) {
        po.labels_csv = index_order;
        po.label_columns = label_columns;
      }
      const std::string split = train ? "train" : "test";
      auto r = dp::data::write_packed_split(*ds, ds->classes(), out, split, po);
      std::printf("dp-pack: %s: %lld of %lld images (%s), %.1f MB in %s/%s.jpgs\n", split.c_str(),
                  static_cast<long long>(r.images), static_cast<long long>(ds->size()),
                  po.per_class > 0 ? ("first " + std::to_string(po.per_class) + " per class").c_str() : "all",
                  static_cast<double>(r.bytes) / 1e6, out.c_str(), split.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dp-pack: error: %s\n", e.what());
    return 1;
  }
}
