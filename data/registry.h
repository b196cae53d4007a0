// Dataset kinds by name, for configs and tools (data/dataset_kind.h). A new kind is written
// beside its dataset and added to the list in data/registry.cpp; tests/data/
// test_dataset_registry.cpp builds every kind from a small fixture.
#pragma once
#include <string>
#include <vector>

#include "data/dataset_kind.h"

namespace dp::data {

const std::vector<DatasetKind>& dataset_kinds();
std::vector<std::string> dataset_kind_names();
// Throws dp::Error listing the known kinds when `name` is not one of them.
const DatasetKind& dataset_kind(const std::string& name);

// dataset_kind(kind).make(request) / .class_names(request).
DatasetSplit make_dataset_split(const std::string& kind, const DatasetRequest& request);
std::vector<std::string> dataset_class_names(const std::string& kind, const DatasetRequest& request);

}  // namespace dp::data
