// The data is part of the run: a fingerprint of the training and validation sets, stored in every
// checkpoint (root attribute `data_fingerprint`, JSON) and compared on --resume, by dp-eval and by
// dp-inspect, so that a model is never continued, scored or explained on other data without a word.
//
// Per split it records the sample count, the class count and names, and three hashes over the
// samples in index order: their names (paths relative to the dataset's folder: a moved dataset keeps
// its fingerprint), their labels (the clean ones; label noise is checked through the noise map),
// and their content without decoding (data::SampleIdentity: file sizes, packed CRC-32s, CIFAR pixel
// CRC-32s, the generator's parameters). Together they say what differs: a swapped folder with the
// same file names and counts shows as other contents. Cost: a stat per image-folder file, spread
// over threads (notes/long-runs.md has the measured times); everything else is in memory.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app/config.h"
#include "app/run_data.h"
#include "data/dataset.h"

namespace dp::app {

struct SplitFingerprint {
  int64_t samples = 0, classes = 0;
  std::vector<std::string> class_names;
  std::string names, labels, content;  // 64-bit hashes, hex
  bool operator==(const SplitFingerprint&) const = default;
};

struct DataFingerprint {
  std::string dataset;  // data.dataset
  std::optional<SplitFingerprint> train, test;

  std::string to_json() const;
  // Throws dp::Error naming `where` (the checkpoint) when the text is not a fingerprint.
  static DataFingerprint from_json(const std::string& json, const std::string& where);
};

SplitFingerprint fingerprint_split(const data::Dataset& split, std::vector<std::string> class_names);

// Both splits of a run: the training set with its clean labels (RunData::train_clean).
DataFingerprint fingerprint_run_data(const RunData& data, const Config& config);

// What differs between the data a checkpoint was trained on and `now`, one phrase each, for the
// splits `now` has; empty when nothing does.
std::vector<std::string> data_differences(const DataFingerprint& stored, const DataFingerprint& now);

// The check of --resume, dp-eval and dp-inspect: throws dp::Error saying what differs, or with
// `allow` (--allow-data-change) prints it as a warning. A checkpoint from before fingerprints
// (`stored_json` empty) gets a note that its data cannot be checked. Printed lines start with `tool`.
void check_data_fingerprint(const std::string& stored_json, const DataFingerprint& now,
                            const std::string& checkpoint_path, const std::string& tool, bool allow);

}  // namespace dp::app
