// Run configuration: a TOML file validated against a schema before any work starts.
//
// Every key has a type, a default and (where it makes sense) a range or a set of allowed
// strings. An unknown key, a wrong type or an out-of-range value stops with the key's dotted
// path and the file's line. `--set section.key=value` overrides are parsed as TOML values and
// validated the same way.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace dp::app {

using ConfigValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>>;

enum class ConfigType { Bool, Int, Float, String, IntList };

struct ConfigKey {
  std::string path;  // "optim.lr"
  ConfigType type;
  ConfigValue default_value;
  double min = -1e300, max = 1e300;    // numbers (inclusive)
  std::vector<std::string> choices;    // strings; empty = any
  std::string help;
};

const std::vector<ConfigKey>& config_schema();

// A value as TOML writes it (true, 3, 0.1, "text", [80, 100]).
std::string format_config_value(const ConfigValue& value);

class Config {
 public:
  // Parses and validates; throws dp::Error naming the file, key and line on any mistake.
  static Config from_file(const std::string& path, const std::vector<std::string>& overrides = {});
  static Config from_string(const std::string& text, const std::string& source_name = "<string>",
                            const std::vector<std::string>& overrides = {});

  bool get_bool(const std::string& path) const;
  int64_t get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  const std::string& get_string(const std::string& path) const;
  const std::vector<int64_t>& get_int_list(const std::string& path) const;
  bool was_set(const std::string& path) const;  // given in the file or by --set

  // The resolved configuration (every key, defaults filled in) as TOML text, for checkpoints.
  std::string resolved_toml() const;

 private:
  const ConfigValue& value(const std::string& path, ConfigType type) const;
  std::map<std::string, ConfigValue> values_;
  std::map<std::string, bool> set_;
};

}  // namespace dp::app
