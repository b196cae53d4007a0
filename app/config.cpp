#include "app/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "engine/error.h"

namespace dp::app {

namespace {

const ConfigKey* find_key(const std::string& path) {
  for (const ConfigKey& k : config_schema())
    if (k.path == path) return &k;
  return nullptr;
}

bool is_section(const std::string& path) {
  for (const ConfigKey& k : config_schema())
    if (k.path.rfind(path + ".", 0) == 0) return true;
  return false;
}

const char* type_name(ConfigType t) {
  switch (t) {
    case ConfigType::Bool: return "a boolean (true/false)";
    case ConfigType::Int: return "an integer";
    case ConfigType::Float: return "a number";
    case ConfigType::String: return "a string";
    case ConfigType::IntList: return "a list of integers";
  }
  return "?";
}

std::string where(const std::string& source, const toml::node& node) {
  const auto& begin = node.source().begin;
  return begin.line > 0 ? fmt::format("{}:{}", source, begin.line) : source;
}

std::string nearest_key(const std::string& path) {
  // Suggest a schema key sharing the last component or the section.
  std::string leaf = path.substr(path.rfind('.') + 1);
  for (const ConfigKey& k : config_schema())
    if (k.path.substr(k.path.rfind('.') + 1) == leaf) return k.path;
  return "";
}

// A value quoted in a message: a 50 MB value is not echoed whole.
std::string shorten(const std::string& text) {
  constexpr size_t kMax = 80;
  return text.size() <= kMax ? text : fmt::format("{}... ({} bytes)", text.substr(0, kMax), text.size());
}

ConfigValue convert(const ConfigKey& key, const toml::node& node, const std::string& at) {
  auto fail = [&](const std::string& why) -> ConfigValue {
    DP_THROW(fmt::format("config {}: key '{}' {}", at, key.path, why),
             key.help.empty() ? fmt::format("expected {}", type_name(key.type))
                              : fmt::format("expected {} ({})", type_name(key.type), key.help));
  };
  auto check_range = [&](double v) {
    // NaN compares false with everything, so it is refused first (it passed `v < min || v > max`).
    if (!std::isfinite(v)) fail(fmt::format("= {} is not a finite number", v));
    if (v < key.min || v > key.max)
      fail(fmt::format("= {} is out of range [{}, {}]", v, key.min, key.max));
  };
  switch (key.type) {
    case ConfigType::Bool:
      if (auto v = node.value_exact<bool>()) return *v;
      return fail(fmt::format("must be {}", type_name(key.type)));
    case ConfigType::Int:
      if (auto v = node.value_exact<int64_t>()) {
        check_range(static_cast<double>(*v));
        return *v;
      }
      return fail(fmt::format("must be {}", type_name(key.type)));
    case ConfigType::Float:
      if (node.is_number()) {
        double v = *node.value<double>();
        check_range(v);
        return v;
      }
      return fail(fmt::format("must be {}", type_name(key.type)));
    case ConfigType::String:
      if (auto v = node.value_exact<std::string>()) {
        if (!key.choices.empty() &&
            std::find(key.choices.begin(), key.choices.end(), *v) == key.choices.end())
          fail(fmt::format("= \"{}\" is not one of: {}", shorten(*v), fmt::join(key.choices, ", ")));
        return *v;
      }
      return fail(fmt::format("must be {}", type_name(key.type)));
    case ConfigType::IntList:
      if (const toml::array* arr = node.as_array()) {
        std::vector<int64_t> out;
        for (const toml::node& e : *arr) {
          auto v = e.value_exact<int64_t>();
          if (!v) fail(fmt::format("must be {}", type_name(key.type)));
          check_range(static_cast<double>(*v));
          out.push_back(*v);
        }
        return out;
      }
      return fail(fmt::format("must be {}", type_name(key.type)));
  }
  return fail("has an unknown type");
}

void walk(const toml::table& table, const std::string& prefix, const std::string& source,
          std::map<std::string, ConfigValue>& values, std::map<std::string, bool>& set) {
  for (const auto& [k, node] : table) {
    std::string path = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    std::string at = where(source, node);
    if (const toml::table* sub = node.as_table()) {
      DP_CHECK(is_section(path),
               fmt::format("config {}: unknown section [{}]", at, path),
               "sections are: data, model, optim, data_parameters, run");
      walk(*sub, path, source, values, set);
      continue;
    }
    const ConfigKey* key = find_key(path);
    if (key == nullptr) {
      std::string near = nearest_key(path);
      DP_THROW(fmt::format("config {}: unknown key '{}'", at, path),
               near.empty() ? "dp-train --help-config (docs/config.md) lists every key of each section with its "
                             "type, default and range"
                            : fmt::format("did you mean '{}'?", near));
    }
    values[path] = convert(*key, node, at);
    set[path] = true;
  }
}

void apply_override(const std::string& assignment, std::map<std::string, ConfigValue>& values,
                    std::map<std::string, bool>& set) {
  auto eq = assignment.find('=');
  DP_CHECK(eq != std::string::npos && eq > 0,
           fmt::format("--set '{}' is not of the form key=value", shorten(assignment)),
           "write e.g. --set optim.lr=0.05 or --set run.device=\\\"cuda\\\"");
  std::string path = assignment.substr(0, eq);
  std::string text = assignment.substr(eq + 1);
  const ConfigKey* key = find_key(path);
  DP_CHECK(key != nullptr, fmt::format("--set: unknown key '{}'", shorten(path)),
           "keys are written section.key, e.g. optim.lr");
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    if (key->type == ConfigType::String) {
      parsed = toml::table{{"v", text}};  // bare strings need no quotes on the command line
    } else {
      DP_THROW(fmt::format("--set {}: '{}' is not a TOML value", path, shorten(text)),
               fmt::format("expected {}", type_name(key->type)));
    }
  }
  values[path] = convert(*key, *parsed.get("v"), "--set");
  set[path] = true;
}

}  // namespace

std::string format_config_value(const ConfigValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<X, int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<X, double>) {
          std::string t = fmt::format("{}", x);  // shortest round-trip form
          return t.find_first_of(".ein") == std::string::npos ? t + ".0" : t;
        }
        else if constexpr (std::is_same_v<X, std::string>) {
          std::ostringstream os;
          os << toml::value<std::string>(x);
          return os.str();
        } else return fmt::format("[{}]", fmt::join(x, ", "));
      },
      v);
}

Config Config::from_string(const std::string& text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  Config c;
  for (const ConfigKey& k : config_schema()) c.values_[k.path] = k.default_value;
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    DP_THROW(fmt::format("config {}:{}: {}", source_name, e.source().begin.line, e.description()),
             "fix the TOML syntax at that line");
  }
  walk(table, "", source_name, c.values_, c.set_);
  for (const std::string& o : overrides) apply_override(o, c.values_, c.set_);
  return c;
}

Config Config::from_file(const std::string& path, const std::vector<std::string>& overrides) {
  // A directory or an empty file used to read as an empty config: the defaults (WRN-28-10,
  // 120 epochs) started training into ./runs/default.
  std::error_code ec;
  DP_CHECK(!std::filesystem::is_directory(path, ec), "the config " + path + " is a directory, not a file",
           "give a .toml file, e.g. configs/quickstart.toml");
  std::ifstream in(path);
  DP_CHECK(in.good(), "cannot read the config file " + path, "check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  DP_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, "the config file " + path + " is empty",
           "a config needs at least a [data] and a [model] section (see configs/quickstart.toml)");
  Config config = from_string(text, path, overrides);  // syntax, keys, types and ranges first
  const toml::table table = toml::parse(text, path);
  for (const char* section : {"data", "model"})
    DP_CHECK(table.contains(section) && table.get(section)->is_table(),
             fmt::format("config {}: has no [{}] section", path, section),
             "a run's config names its dataset ([data] dataset, path) and its net ([model] arch); "
             "see configs/quickstart.toml");
  return config;
}

const ConfigValue& Config::value(const std::string& path, ConfigType type) const {
  const ConfigKey* key = find_key(path);
  DP_CHECK(key != nullptr && key->type == type,
           fmt::format("internal: config key '{}' read as {}", path, type_name(type)),
           "this is a bug: the schema and the reader disagree");
  return values_.at(path);
}

bool Config::get_bool(const std::string& p) const { return std::get<bool>(value(p, ConfigType::Bool)); }
int64_t Config::get_int(const std::string& p) const { return std::get<int64_t>(value(p, ConfigType::Int)); }
double Config::get_float(const std::string& p) const { return std::get<double>(value(p, ConfigType::Float)); }
const std::string& Config::get_string(const std::string& p) const {
  return std::get<std::string>(value(p, ConfigType::String));
}
const std::vector<int64_t>& Config::get_int_list(const std::string& p) const {
  return std::get<std::vector<int64_t>>(value(p, ConfigType::IntList));
}
bool Config::was_set(const std::string& path) const { return set_.count(path) > 0; }

std::string Config::resolved_toml() const {
  std::string out, section;
  for (const ConfigKey& k : config_schema()) {
    std::string sec = k.path.substr(0, k.path.find('.'));
    if (sec != section) {
      out += (out.empty() ? "" : "\n") + fmt::format("[{}]\n", sec);
      section = sec;
    }
    out += fmt::format("{} = {}\n", k.path.substr(k.path.find('.') + 1), format_config_value(values_.at(k.path)));
  }
  return out;
}

}  // namespace dp::app
