#include "nets/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "nets/resnet.h"
#include "nets/tiny_cnn.h"
#include "nets/wide_resnet.h"

namespace dp::nets {

namespace {
std::string normalise(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_int(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}
}  // namespace

bool parse_wrn_name(const std::string& raw, int64_t& depth, int64_t& width) {
  std::string s = normalise(raw);
  for (const char* prefix : {"wideresnet-", "wide-resnet-", "wrn-"}) {
    std::string p = prefix;
    if (s.rfind(p, 0) != 0) continue;
    std::string_view rest(s);
    rest.remove_prefix(p.size());
    size_t dash = rest.find('-');
    if (dash == std::string_view::npos) return false;
    return parse_int(rest.substr(0, dash), depth) && parse_int(rest.substr(dash + 1), width);
  }
  return false;
}

std::vector<std::string> known_net_names() {
  return {"resnet18", "resnet34", "wrn-28-10", "wrn-16-4", "wrn-D-K", "tiny-cnn"};
}

layers::ModulePtr make_net(const std::string& name, int64_t num_classes, uint64_t seed) {
  DP_CHECK(num_classes > 0, fmt::format("net '{}': num_classes must be positive, got {}", name, num_classes),
           "set the number of classes of the dataset");
  std::string s = normalise(name);
  if (s == "resnet18" || s == "resnet-18") return resnet18(num_classes, seed);
  if (s == "resnet34" || s == "resnet-34") return resnet34(num_classes, seed);
  if (s == "tiny-cnn" || s == "tinycnn") return std::make_shared<TinyCnn>(num_classes, seed);
  int64_t depth = 0, width = 0;
  if (parse_wrn_name(s, depth, width)) return wide_resnet(depth, width, num_classes, seed);
  std::string names;
  for (const auto& n : known_net_names()) names += (names.empty() ? "" : ", ") + n;
  DP_THROW(fmt::format("unknown net '{}'", name),
           fmt::format("known nets: {} (wrn-D-K with D = 6n+4, e.g. wrn-40-2)", names));
}

}  // namespace dp::nets
