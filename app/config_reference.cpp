#include "app/config_reference.h"

#include <fmt/format.h>

#include "app/config.h"
#include "data/registry.h"

namespace dp::app {

namespace {

const char* short_type(ConfigType t) {
  switch (t) {
    case ConfigType::Bool: return "bool";
    case ConfigType::Int: return "int";
    case ConfigType::Float: return "float";
    case ConfigType::String: return "string";
    case ConfigType::IntList: return "int list";
  }
  return "?";
}

// A table cell: no line breaks, '|' escaped.
std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return out;
}

std::string allowed(const ConfigKey& k) {
  if (!k.choices.empty()) {
    std::vector<std::string> quoted;
    for (const std::string& c : k.choices) quoted.push_back("`" + c + "`");
    return fmt::format("{}", fmt::join(quoted, ", "));
  }
  if (k.type == ConfigType::Int || k.type == ConfigType::Float || k.type == ConfigType::IntList) {
    auto number = [&](double v) {
      return k.type == ConfigType::Float ? fmt::format("{}", v) : fmt::format("{}", static_cast<int64_t>(v));
    };
    const bool low = k.min > -1e300, high = k.max < 1e300;
    if (low && high) return fmt::format("{} … {}", number(k.min), number(k.max));
    if (low) return fmt::format("≥ {}", number(k.min));
    if (high) return fmt::format("≤ {}", number(k.max));
  }
  return "";
}

}  // namespace

std::string config_reference() {
  std::string out =
      "# dp-train configuration reference\n\n"
      "Generated from the schema (app/config_schema.cpp) by `dp-train --help-config`; this page is its\n"
      "output (regenerate it with `build/tools/dp-train --help-config > docs/config.md`; a test checks it).\n"
      "A run's TOML file sets keys by section (`[optim]` then `lr = 0.05`); `--set optim.lr=0.05` overrides\n"
      "one. Every key is optional: an unknown key, a wrong type or a value out of range stops dp-train\n"
      "with the key and the file's line. The resolved configuration (every key) is written to\n"
      "`config.toml` in the run folder and into every checkpoint.\n";
  std::string section;
  for (const ConfigKey& k : config_schema()) {
    const std::string sec = k.path.substr(0, k.path.find('.'));
    if (sec != section) {
      if (section == "data") {
        out += "\nDataset kinds (`data.dataset`, data/registry.h):\n\n";
        for (const data::DatasetKind& kind : data::dataset_kinds())
          out += fmt::format("- `{}`: {}\n", kind.name, kind.summary);
      }
      out += fmt::format("\n## [{}]\n\n| key | type | default | values | description |\n|---|---|---|---|---|\n", sec);
      section = sec;
    }
    out += fmt::format("| `{}` | {} | `{}` | {} | {} |\n", k.path.substr(k.path.find('.') + 1), short_type(k.type),
                       cell(format_config_value(k.default_value)), cell(allowed(k)), cell(k.help));
  }
  return out;
}

}  // namespace dp::app
