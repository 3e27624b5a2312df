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
#include "engine/config/config.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/bounded_file.h"
#include "engine/config/bounded_yaml.h"
#include "engine/config/engine_keys.h"
#include "engine/config/key_table.h"
#include "engine/config/section_internal.h"

namespace ferry::config {
namespace {

// The known keys of every section, for the unknown-key hints.
std::vector<SectionKeys> Schema() {
  std::vector<SectionKeys> schema;
  for (absl::string_view path : SectionPaths(EngineKeys())) {
    schema.push_back({std::string(path), KnownKeys(EngineKeys(), path)});
  }
  return schema;
}

absl::StatusOr<Config> Build(const YAML::Node& root, const std::string& source) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", source, ": is empty"));
  }
  LoadContext context{.source = source, .warnings = {}, .schema = Schema()};
  FERRY_ASSIGN_OR_RETURN(Section top,
                         SectionAccess::Open(&context, &root, "", context.schema.front().keys,
                                             /*skip_unknown_maps=*/false));
  Config c;
  c.source = source;
  FERRY_RETURN_IF_ERROR(ReadEngineTopLevel(top, &c));
  FERRY_RETURN_IF_ERROR(ReadEngineSections(top, &c));
  WarnAboutEngine(top, c);
  c.warnings = std::move(context.warnings);
  return c;
}

absl::StatusOr<Config> ParseText(absl::string_view text, const std::string& source) {
  const std::string prefix = absl::StrCat("config ", source, ": ");
  return CatchYamlExceptions<Config>(prefix, [&]() -> absl::StatusOr<Config> {
    FERRY_ASSIGN_OR_RETURN(const YAML::Node root, LoadBoundedYaml(text, prefix));
    return Build(root, source);
  });
}

}  // namespace

std::string Config::DebugString() const {
  std::string out;
  DumpKeys(EngineKeys(), EngineSectionDumps(), *this, 0, &out);
  return out;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::string text;
  if (absl::Status st = ReadRegularFile(path, kMaxConfigBytes, &text, nullptr); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", st.message()));
  }
  return ParseText(text, path);
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name) {
  return ParseText(absl::string_view(yaml_text.data(), yaml_text.size()), std::string(source_name));
}

}  // namespace ferry::config
