// Connector sections: a connector's own top-level section of ferryd's config (`postgres:` today,
// an `objects:` bucket section next). The engine's loader does not know what is inside one; the
// program that links the connector (ferryd, the only code that sees every connector) declares
// its sections when it loads the config, and each connector reads its own.
//
// Decision: the section is declared by the program and read during the load, in place, through
// the same Section as the engine's own sections, rather than handed back as a raw YAML subtree
// to be parsed later. This is how extensible servers keep one strict config (Envoy's typed
// extension configs, RocksDB's registered option tables):
//   * one document, one pass, one set of hostile-input budgets; the YAML tree never leaves
//     engine/config, and every connector error has the engine's form, key path, line and column;
//   * unknown keys stay errors everywhere: at the top level (a section no linked connector
//     declares), inside a connector's section (its declared keys), with the same hints ("did you
//     mean", "'bucket' belongs under 'objects'"), because the declared keys join the schema;
//   * errors and warnings come in document-schema order: the top-level values, then the
//     connector sections in declaration order, then the engine's sections. The first problem of
//     a config with several is the same whoever reads which part.
// Adding a connector section touches no engine code: the connector defines a ConnectorSection
// (usually over its own key table, key_table.h), and ferryd passes one more pointer.
// A program that reads only the engine's part of a ferryd config (the engine's own tests, a tool
// that wants listen.admin) loads with LoadOptions::OtherSections::kSkip: a top-level map that no
// declared section claims is then skipped unread, as RocksDB's ignore_unsupported_options skips
// a plugin it does not link. ferryd never does: it declares every connector it links.
//
// Example (connectors/postgres/common/postgres_config.h is the real one):
//   class StoreSection final : public config::ConnectorSection {
//    public:
//     absl::string_view name() const override { return "objects"; }
//     std::vector<std::string> keys() const override { return KnownKeys<StoreConfig>(kKeys, ""); }
//     absl::Status Read(const config::Section& s, const config::ConnectorContext&) override {
//       return ReadSectionKeys<StoreConfig>(s, kKeys, "", &config_);
//     }
//     const StoreConfig& config() const { return config_; }
//    private:
//     StoreConfig config_;
//   };
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/config/section.h"

namespace ferry::config {

// What the engine's top level says that a connector may need while reading its section.
struct ConnectorContext {
  std::string region;  // this region's name (already validated)
};

// One connector's top-level section. Implementations keep what they read; the loader calls
// Read at most once per load, from the loading thread.
class ConnectorSection {
 public:
  virtual ~ConnectorSection() = default;

  // The top-level key ("postgres"). Must not be one of the engine's keys.
  virtual absl::string_view name() const = 0;
  // The keys the section accepts, in the order of the connector's docs. Any other key in the
  // section is an unknown key; a top-level key among these is reported as mis-indented.
  virtual std::vector<std::string> keys() const = 0;
  // Reads the section: `section` holds only known keys, and is empty when the file has no such
  // section (a required key then reports "is required"). Returns the first problem, made with
  // section.Error(...) so that it names the key and its position; warnings go to
  // section.Warn(...). On error the load fails and what this object holds is unspecified.
  [[nodiscard]] virtual absl::Status Read(const Section& section,
                                          const ConnectorContext& context) = 0;
};

}  // namespace ferry::config
