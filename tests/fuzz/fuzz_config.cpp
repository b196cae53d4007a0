// The TOML config loader and validator. Property: a config that validates resolves to TOML text
// that validates again to the same text.
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "app/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // The first line, if it looks like one, is also tried as a --set override.
  const size_t nl = text.find('\n');
  const std::string first = text.substr(0, nl);
  for (int with_override = 0; with_override < 2; ++with_override) {
    try {
      std::vector<std::string> overrides;
      if (with_override) overrides.push_back(first);
      dp::app::Config c = dp::app::Config::from_string(text, "fuzz.toml", overrides);
      const std::string resolved = c.resolved_toml();
      if (dp::app::Config::from_string(resolved, "resolved.toml").resolved_toml() != resolved) __builtin_trap();
    } catch (const dp::Error&) {
    }
  }
  return 0;
}
