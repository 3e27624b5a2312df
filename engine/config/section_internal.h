// What the loader (config.cc) and Section (section.cc) share, and no one else sees: the state of
// one load, and how a Section is made from a YAML map. Internal to engine/config.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config/section.h"

namespace ferry::config {

// The known keys of one section, for "did you mean" and "belongs under" hints.
struct SectionKeys {
  std::string path;
  std::vector<std::string> keys;
};

// The state of one load. Outlives every Section made from it.
struct LoadContext {
  std::string source;                 // the file name, in every message
  std::vector<std::string> warnings;  // Section::Warn appends here
  // Every section's keys, in the order hints search them (the top level first).
  std::vector<SectionKeys> schema;
};

struct Section::Rep {
  LoadContext* context;
  std::string path;
  std::vector<std::pair<std::string, YAML::Node>> entries;  // in file order

  const YAML::Node* Find(absl::string_view key) const {
    for (const auto& [name, node] : entries) {
      if (name == key) return &node;
    }
    return nullptr;
  }
};

struct SectionAccess {
  // The section of `node` (null or absent: empty) at `path`, its keys checked against `known`.
  // With `skip_unknown_maps`, an unknown key whose value is a map or null is left out of the
  // section instead of refused (the top level of a load that does not read every connector).
  [[nodiscard]] static absl::StatusOr<Section> Open(LoadContext* context, const YAML::Node* node,
                                                    std::string path,
                                                    std::span<const std::string> known,
                                                    bool skip_unknown_maps);
};

}  // namespace ferry::config
