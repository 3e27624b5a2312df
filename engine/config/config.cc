// The config loader: reads the file, parses it under the budgets of limits.h, and reads the
// engine's sections in the order of its key table. Where each part lives:
//
//   value_parsers.h   one value's text -> value (HOST:PORT, byte sizes, integers, booleans, enums)
//   secret.h          secrets from files and environment variables
//   bounded_file.h    reading small files with a size cap
//   bounded_yaml.h    the hostile-input budgets and the yaml-cpp exception edge
//   section.h         one map of the file: key checks, typed getters, messages with positions
//   key_table.h       describing keys once for the reader, the key check and the dump
//   engine_keys.cc    the engine's key table and the rules between its keys
//   connector_section.h   a connector's own section, declared by the program at load time
#include "engine/config/config.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/bounded_file.h"
#include "engine/config/bounded_yaml.h"
#include "engine/config/engine_keys.h"
#include "engine/config/key_table.h"
#include "engine/config/section_internal.h"

namespace ferry::config {
namespace {

// The known keys of every section, for Section's unknown-key check and its hints: the top level
// (its values, the connector sections, the engine's sections), each connector's section, then
// each engine section, in the order the hints search them.
std::vector<SectionKeys> Schema(const LoadOptions& options) {
  const std::span<const Key<Config>> keys = EngineKeys();
  std::vector<SectionKeys> schema;
  SectionKeys top{.path = "", .keys = OwnKeys(keys, "")};
  for (const ConnectorSection* connector : options.connectors) {
    top.keys.emplace_back(connector->name());
  }
  for (std::string& child : ChildSections(keys, "")) top.keys.push_back(std::move(child));
  schema.push_back(std::move(top));
  for (const ConnectorSection* connector : options.connectors) {
    schema.push_back({std::string(connector->name()), connector->keys()});
  }
  for (absl::string_view path : SectionPaths(keys)) {
    if (!path.empty()) schema.push_back({std::string(path), KnownKeys(keys, path)});
  }
  return schema;
}

// A connector section under an engine key or declared twice is a bug of the program.
absl::Status CheckConnectorNames(const LoadOptions& options) {
  std::vector<std::string> taken = KnownKeys(EngineKeys(), "");
  for (const ConnectorSection* connector : options.connectors) {
    const std::string name(connector->name());
    if (std::find(taken.begin(), taken.end(), name) != taken.end()) {
      return absl::InternalError(
          absl::StrCat("connector section '", name, "' is an engine key or declared twice"));
    }
    taken.push_back(name);
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> Build(const YAML::Node& root, const std::string& source,
                             const LoadOptions& options) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", source, ": is empty"));
  }
  LoadContext context{.source = source, .warnings = {}, .schema = Schema(options)};
  FERRY_ASSIGN_OR_RETURN(
      const Section top,
      SectionAccess::Open(&context, &root, "", context.schema.front().keys,
                          options.other_sections == LoadOptions::OtherSections::kSkip));
  Config c;
  c.source = source;
  FERRY_RETURN_IF_ERROR(ReadEngineTopLevel(top, &c));
  const ConnectorContext connector_context{.region = c.region};
  for (ConnectorSection* connector : options.connectors) {
    FERRY_ASSIGN_OR_RETURN(const Section section, top.Child(connector->name(), connector->keys()));
    FERRY_RETURN_IF_ERROR(connector->Read(section, connector_context));
  }
  FERRY_RETURN_IF_ERROR(ReadEngineSections(top, &c));
  WarnAboutEngine(top, c);
  c.warnings = std::move(context.warnings);
  return c;
}

absl::StatusOr<Config> ParseText(absl::string_view text, const std::string& source,
                                 const LoadOptions& options) {
  FERRY_RETURN_IF_ERROR(CheckConnectorNames(options));
  const std::string prefix = absl::StrCat("config ", source, ": ");
  return CatchYamlExceptions<Config>(prefix, [&]() -> absl::StatusOr<Config> {
    FERRY_ASSIGN_OR_RETURN(const YAML::Node root, LoadBoundedYaml(text, prefix));
    return Build(root, source, options);
  });
}

const LoadOptions& EngineOnly() {
  static const LoadOptions* const options =
      new LoadOptions{.connectors = {}, .other_sections = LoadOptions::OtherSections::kSkip};
  return *options;
}

}  // namespace

std::string Config::DebugString() const {
  std::string out;
  DumpKeys(EngineKeys(), EngineSectionDumps(), *this, 0, &out);
  return out;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path, const LoadOptions& options) {
  std::string text;
  if (absl::Status st = ReadRegularFile(path, kMaxConfigBytes, &text, nullptr); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", st.message()));
  }
  return ParseText(text, path, options);
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name,
                                   const LoadOptions& options) {
  return ParseText(absl::string_view(yaml_text.data(), yaml_text.size()), std::string(source_name),
                   options);
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  return LoadConfigFile(path, EngineOnly());
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name) {
  return ParseConfig(yaml_text, source_name, EngineOnly());
}

}  // namespace ferry::config
