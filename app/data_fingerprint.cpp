#include "app/data_fingerprint.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/run_data.h"
#include "data/registry.h"
#include "engine/error.h"
#include "layers/module.h"  // fnv1a64

namespace dp::app {

namespace {

template <class T>
void append_bytes(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

std::string hex(uint64_t h) { return fmt::format("{:016x}", h); }

// What the content hash covers, by data.dataset (data::DatasetKind::identity).
std::string content_meaning(const std::string& dataset) {
  for (const data::DatasetKind& k : data::dataset_kinds())
    if (k.name == dataset) return k.identity;
  return "contents";
}

nlohmann::ordered_json split_json(const SplitFingerprint& s) {
  return {{"samples", s.samples}, {"classes", s.classes}, {"class_names", s.class_names},
          {"names", s.names},     {"labels", s.labels},   {"content", s.content}};
}

SplitFingerprint split_from_json(const nlohmann::json& j) {
  SplitFingerprint s;
  s.samples = j.at("samples").get<int64_t>();
  s.classes = j.at("classes").get<int64_t>();
  s.class_names = j.at("class_names").get<std::vector<std::string>>();
  s.names = j.at("names").get<std::string>();
  s.labels = j.at("labels").get<std::string>();
  s.content = j.at("content").get<std::string>();
  return s;
}

void split_differences(const char* split, const SplitFingerprint& then, const SplitFingerprint& now,
                       const std::string& dataset, std::vector<std::string>& out) {
  if (then.samples != now.samples)
    out.push_back(fmt::format("the {} has {} samples, the run's had {}", split, now.samples, then.samples));
  if (then.classes != now.classes) {
    out.push_back(fmt::format("the {} has {} classes, the run's had {}", split, now.classes, then.classes));
  } else if (then.class_names != now.class_names) {
    size_t first = 0, renamed = 0;
    for (size_t c = then.class_names.size(); c-- > 0;)
      if (then.class_names[c] != now.class_names[c]) first = c, ++renamed;
    out.push_back(fmt::format("the {}'s class {} is '{}', the run's was '{}'{}", split, first, now.class_names[first],
                              then.class_names[first],
                              renamed > 1 ? fmt::format(" ({} classes are named differently)", renamed) : ""));
  }
  if (then.samples != now.samples) return;  // the hashes cannot agree: nothing more to say
  if (then.names != now.names)
    out.push_back(fmt::format("the {}'s {} samples have other names or another order", split, now.samples));
  if (then.labels != now.labels) out.push_back(fmt::format("the {}'s samples have other labels", split));
  if (then.names == now.names && then.labels == now.labels && then.content != now.content)
    out.push_back(fmt::format("the {}'s {} samples have the same names and labels but other {}: the data was "
                              "replaced",
                              split, now.samples, content_meaning(dataset)));
}

}  // namespace

std::string DataFingerprint::to_json() const {
  nlohmann::ordered_json j{{"version", 1}, {"dataset", dataset}};
  if (train) j["train"] = split_json(*train);
  if (test) j["test"] = split_json(*test);
  return j.dump();
}

DataFingerprint DataFingerprint::from_json(const std::string& json, const std::string& where) {
  try {
    const nlohmann::json j = nlohmann::json::parse(json);
    DataFingerprint f;
    f.dataset = j.at("dataset").get<std::string>();
    if (j.contains("train")) f.train = split_from_json(j.at("train"));
    if (j.contains("test")) f.test = split_from_json(j.at("test"));
    return f;
  } catch (const nlohmann::json::exception& e) {
    DP_THROW(fmt::format("{}: its data_fingerprint attribute is not a data fingerprint: {}", where, e.what()),
             "the file was changed after dp-train wrote it: use another checkpoint, or pass --allow-data-change to "
             "skip the data check");
  }
}

SplitFingerprint fingerprint_split(const data::Dataset& split, std::vector<std::string> class_names) {
  // Hashed in fixed chunks (so the result does not depend on the thread count), on up to 16
  // threads: an image folder's identities are stats, which a network file system answers slowly
  // one at a time.
  constexpr int64_t kChunk = 4096;
  const int64_t n = split.size();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::array<uint64_t, 3>> digests(static_cast<size_t>(chunks));
  std::atomic<int64_t> next{0};
  std::mutex failed;
  std::exception_ptr error;
  auto work = [&] {
    try {
      for (int64_t c = next++; c < chunks; c = next++) {
        std::string names, labels, content;
        for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
          const data::SampleIdentity id = split.identity(i);
          names += id.name;
          names += '\n';
          append_bytes(labels, split.label(i));
          append_bytes(content, id.content);
        }
        digests[static_cast<size_t>(c)] = {layers::fnv1a64(names), layers::fnv1a64(labels), layers::fnv1a64(content)};
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failed);
      if (!error) error = std::current_exception();
    }
  };
  const auto threads =
      static_cast<int64_t>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 16));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < std::min(threads, chunks); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  std::array<std::string, 3> all;
  for (const auto& d : digests)
    for (size_t k = 0; k < 3; ++k) append_bytes(all[k], d[k]);
  SplitFingerprint s;
  s.samples = n;
  s.classes = split.num_classes();
  s.class_names = std::move(class_names);
  s.names = hex(layers::fnv1a64(all[0]));
  s.labels = hex(layers::fnv1a64(all[1]));
  s.content = hex(layers::fnv1a64(all[2]));
  return s;
}

DataFingerprint fingerprint_run_data(const RunData& data, const Config& config) {
  DataFingerprint f;
  const DataSettings settings = make_data_settings(config);
  f.dataset = settings.kind;
  const std::vector<std::string> names = class_names(settings, data.num_classes);
  f.train = fingerprint_split(*data.train_clean, names);
  f.test = fingerprint_split(*data.test, names);
  return f;
}

std::vector<std::string> data_differences(const DataFingerprint& stored, const DataFingerprint& now) {
  std::vector<std::string> out;
  if (stored.dataset != now.dataset)
    out.push_back(fmt::format("data.dataset is \"{}\", the run's was \"{}\"", now.dataset, stored.dataset));
  if (stored.train && now.train) split_differences("training set", *stored.train, *now.train, now.dataset, out);
  if (stored.test && now.test) split_differences("validation set", *stored.test, *now.test, now.dataset, out);
  return out;
}

void check_data_fingerprint(const std::string& stored_json, const DataFingerprint& now,
                            const std::string& checkpoint_path, const std::string& tool, bool allow) {
  if (stored_json.empty()) {
    std::fprintf(stderr,
                 "%s: note: %s records no data fingerprint (it was written before dp-train recorded one): "
                 "its data cannot be compared with this data\n",
                 tool.c_str(), checkpoint_path.c_str());
    return;
  }
  std::string what;
  try {
    for (const std::string& d : data_differences(DataFingerprint::from_json(stored_json, checkpoint_path), now))
      what += (what.empty() ? "" : "; ") + d;
  } catch (const Error& e) {
    if (!allow) throw;
    what = e.message();  // an unreadable record: what --allow-data-change is for, too
  }
  if (what.empty()) return;
  if (allow) {
    std::fprintf(stderr, "%s: warning: this is not the data %s was trained on (%s); going on as --allow-data-change asks\n",
                 tool.c_str(), checkpoint_path.c_str(), what.c_str());
    return;
  }
  DP_THROW(fmt::format("this is not the data {} was trained on: {}", checkpoint_path, what),
           "use the data the run was trained on (data.dataset, data.path and the data.* keys of its config.toml), "
           "or pass --allow-data-change if you mean to use this data");
}

}  // namespace dp::app
