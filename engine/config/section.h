// Section: one map of the config file (the top level, `listen`, `security.tls`, a connector's
// `postgres`) as the code that reads it sees it: its keys already checked, typed getters for its
// values, and the file name, key path, line and column that every error carries. It is how the
// engine reads its own sections and how a connector reads its section: the YAML tree stays
// private to engine/config, and every reader produces the same messages.
//
//   * Every getter validates (type, size, range, format) and returns the first problem as
//     kInvalidArgument: `config SOURCE: key 'PATH.KEY': REASON (line L, column C)`, the position
//     being that of the key's value (absent for a key that is not set). On error *out is left
//     unchanged; an absent optional key leaves *out unchanged too, so callers preset defaults.
//   * A string value is at most kMaxStringBytes and holds no NUL; every value is type-checked
//     before it is walked (a list where a string belongs is refused at once).
//   * Warnings (`Warn`) go to the load's Config::warnings. They must never contain a secret.
//
// A Section is a cheap handle on the loader's state and is valid only while the load that made
// it runs (e.g. inside ConnectorSection::Read). Not thread-safe.
//
// Example (a connector's reader):
//   FERRY_RETURN_IF_ERROR(section.GetString("bucket", Need::kRequired, CheckBucket, &c.bucket));
//   FERRY_RETURN_IF_ERROR(section.GetSize("part_bytes", 5 << 20, 5ull << 30, &c.part_bytes));
//   if (c.part_bytes > c.max_object_bytes)
//     return section.Error("part_bytes", "must be <= max_object_bytes");
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config/enum_field.h"
#include "engine/config/secret.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {

enum class Need { kOptional, kRequired };

// Checks one string value: OK, or kInvalidArgument whose message is only the reason.
using Check = absl::Status (*)(absl::string_view text);

// How a list of strings is read: each item is a string checked by `check`, and no item may
// appear twice.
struct ListSpec {
  // One item, for messages: "\"schema.table\"" gives `expected a list of "schema.table" names`.
  absl::string_view item;
  // What an item names, for the duplicate message: "table" gives `table "a.b" is listed twice`.
  absl::string_view item_noun;
  Check check = nullptr;
};

class Section {
 public:
  // "" for the top level, "security.tls" for a nested map.
  const std::string& path() const;
  // "PATH.KEY" ("KEY" at the top level).
  std::string KeyPath(absl::string_view key) const;
  // Whether `key` is set in this map.
  bool Has(absl::string_view key) const;

  // kInvalidArgument `config SOURCE: key 'PATH.KEY': REASON`, with the line and column of the
  // key's value when the key is set.
  [[nodiscard]] absl::Status Error(absl::string_view key, absl::string_view reason) const;
  // Adds `config SOURCE: key 'PATH.KEY': WHAT` to the load's warnings.
  void Warn(absl::string_view key, absl::string_view what) const;

  // A string, checked by `check` when not null.
  [[nodiscard]] absl::Status GetString(absl::string_view key, Need need, Check check,
                                       std::string* out) const;
  // An integer in [min, max] (value_parsers.h: ParseInteger).
  [[nodiscard]] absl::Status GetInt(absl::string_view key, int64_t min, int64_t max,
                                    int64_t* out) const;
  [[nodiscard]] absl::Status GetInt(absl::string_view key, int min, int max, int* out) const;
  // A byte size in [min, max] (value_parsers.h: ParseByteSize).
  [[nodiscard]] absl::Status GetSize(absl::string_view key, uint64_t min, uint64_t max,
                                     uint64_t* out) const;
  // true or false (value_parsers.h: ParseBool).
  [[nodiscard]] absl::Status GetBool(absl::string_view key, bool* out) const;
  // One of the enum's names (enum_field.h).
  [[nodiscard]] absl::Status GetEnum(absl::string_view key, Need need, const EnumRef& out) const;
  // HOST:PORT; port 0 only when `allow_port_0` (listening addresses).
  [[nodiscard]] absl::Status GetHostPort(absl::string_view key, Need need, bool allow_port_0,
                                         HostPort* out) const;
  // A list of strings; a key with no value is an empty list. Items are reported as KEY[i].
  [[nodiscard]] absl::Status GetStringList(absl::string_view key, const ListSpec& spec,
                                           std::vector<std::string>* out) const;
  // The secret of the key pair NAME_file (an absolute path) / NAME_env (a variable name), at most
  // one of them set; neither leaves *out unset. Reads the file or the variable now (secret.h)
  // and warns about a file readable by group or others.
  [[nodiscard]] absl::Status GetSecret(absl::string_view name, Secret* out) const;

  // The map under `key` (absent or with no value: an empty section), its keys checked against
  // `known`: an unknown key is an error with a "did you mean" among `known` or the name of the
  // section it belongs to, a key set twice is an error.
  [[nodiscard]] absl::StatusOr<Section> Child(absl::string_view key,
                                              std::span<const std::string> known) const;

 private:
  friend struct SectionAccess;  // engine/config/section_internal.h
  struct Rep;
  explicit Section(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

  std::shared_ptr<const Rep> rep_;
};

}  // namespace ferry::config
