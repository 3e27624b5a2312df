// Key tables: every key of a config struct described once (section, name, kind, range, check,
// how a dump shows it) next to the field that holds it. The reader (ReadSectionKeys), the
// unknown-key check (KnownKeys) and the dump (DumpKeys) all walk the same table, so a key cannot
// be parsed by one and forgotten by another. The kind of a key is the type of its field:
//
//   std::string               a string, checked by `check`; `quoted` / `empty_text` for the dump
//   std::vector<std::string>  a list of strings (`list`)
//   bool                      true / false
//   int, int64_t              an integer in [min, max]
//   uint64_t                  a byte size in [min, max]
//   HostPort                  HOST:PORT (`allow_port_0` for listening addresses)
//   Secret                    the key pair NAME_file / NAME_env; dumped masked as NAME
//   an enum with EnumNames    one of its names
//
// A field's default is its struct's initializer: the reader starts from a default-constructed
// struct, and the dump shows what is there, so the default too is written once.
//
// Example (the engine's table is engine/config/engine_keys.cc):
//   struct StoreConfig { std::string bucket; uint64_t part_bytes = 8ull << 20; };
//   constexpr Key<StoreConfig> kStoreKeys[] = {
//       {{.name = "bucket", .need = Need::kRequired, .check = CheckBucket},
//        Field<&StoreConfig::bucket>},
//       {{.name = "part_bytes", .min = 5 << 20, .max = int64_t{5} << 30},
//        Field<&StoreConfig::part_bytes>},
//   };
//   FERRY_RETURN_IF_ERROR(ReadSectionKeys<StoreConfig>(section, kStoreKeys, "", &config));
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/base/status_macros.h"
#include "engine/config/enum_field.h"
#include "engine/config/secret.h"
#include "engine/config/section.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {

// Where a key's value lives, typed.
using FieldRef = std::variant<std::string*, std::vector<std::string>*, bool*, int*, int64_t*,
                              uint64_t*, HostPort*, Secret*, EnumRef>;

// What a key is, apart from where it lives.
struct KeyInfo {
  // The section holding the key, relative to the table's root: "" (the root itself), "stream",
  // "security.tls". A table lists the keys of a section together, parents before children.
  absl::string_view section;
  // The key; for a secret the base name (NAME of NAME_file / NAME_env).
  absl::string_view name;
  Need need = Need::kOptional;
  // Integers and byte sizes: the accepted range, inclusive.
  int64_t min = 0;
  int64_t max = 0;
  // HOST:PORT: whether port 0 ("any free port") is allowed.
  bool allow_port_0 = false;
  // Strings: the check of the value (null: any string).
  Check check = nullptr;
  // Lists of strings.
  ListSpec list = {};
  // The dump: a string in double quotes (paths, connection strings)...
  bool quoted = false;
  // ...and what an empty string shows instead ("<not checked>"); empty: the empty string.
  absl::string_view empty_text = {};
};

// One row of a key table over the struct Root.
template <typename Root>
struct Key {
  KeyInfo info;
  FieldRef (*field)(Root& root);
};

namespace key_table_internal {
template <typename M>
struct ClassOf;
template <typename C, typename T>
struct ClassOf<T C::*> {
  using type = C;
};
template <typename T>
T& Walk(T& value) {
  return value;
}
template <typename T, typename M, typename... Ms>
auto& Walk(T& value, M member, Ms... members) {
  return Walk(value.*member, members...);
}
template <typename T>
FieldRef RefTo(T* field) {
  if constexpr (std::is_enum_v<T>) {
    return EnumRef(field);
  } else {
    return field;
  }
}
}  // namespace key_table_internal

// The field reached from the root through the member pointers: Field<&Config::stream,
// &StreamConfig::window_bytes> is config.stream.window_bytes.
template <auto first, auto... rest>
FieldRef Field(typename key_table_internal::ClassOf<decltype(first)>::type& root) {
  return key_table_internal::RefTo(&key_table_internal::Walk(root, first, rest...));
}

// Reads one key of `section` into `field` (the getters of section.h, chosen by the field's type).
[[nodiscard]] absl::Status ReadKey(const Section& section, const KeyInfo& info,
                                   const FieldRef& field);
// The YAML keys of one row: NAME, or NAME_file and NAME_env for a secret.
void AppendYamlKeys(const KeyInfo& info, const FieldRef& field, std::vector<std::string>* out);
// "NAME: VALUE" as the dump shows it (a secret masked), without indentation or newline.
std::string DumpLine(const KeyInfo& info, const FieldRef& field);

// The YAML keys of `section` itself, in `keys`' order (a secret gives NAME_file, NAME_env).
template <typename Root>
std::vector<std::string> OwnKeys(std::span<const Key<Root>> keys, absl::string_view section) {
  Root probe{};
  std::vector<std::string> own;
  for (const Key<Root>& key : keys) {
    if (key.info.section == section) AppendYamlKeys(key.info, key.field(probe), &own);
  }
  return own;
}

// The names of the direct child sections of `section`, in the order they first appear.
template <typename Root>
std::vector<std::string> ChildSections(std::span<const Key<Root>> keys, absl::string_view section) {
  std::vector<std::string> children;
  const std::string prefix = section.empty() ? "" : absl::StrCat(section, ".");
  for (const Key<Root>& key : keys) {
    const absl::string_view path = key.info.section;
    if (path.size() <= prefix.size() || !absl::StartsWith(path, prefix)) continue;
    std::string child(path.substr(prefix.size(), path.find('.', prefix.size()) - prefix.size()));
    if (std::find(children.begin(), children.end(), child) == children.end()) {
      children.push_back(std::move(child));
    }
  }
  return children;
}

// OwnKeys, then ChildSections: every key Section::Child accepts in that section.
template <typename Root>
std::vector<std::string> KnownKeys(std::span<const Key<Root>> keys, absl::string_view section) {
  std::vector<std::string> known = OwnKeys(keys, section);
  for (std::string& child : ChildSections(keys, section)) known.push_back(std::move(child));
  return known;
}

// Every section path of `keys`, in order of first appearance ("" first when it has keys).
template <typename Root>
std::vector<absl::string_view> SectionPaths(std::span<const Key<Root>> keys) {
  std::vector<absl::string_view> paths;
  for (const Key<Root>& key : keys) {
    if (std::find(paths.begin(), paths.end(), key.info.section) == paths.end()) {
      paths.push_back(key.info.section);
    }
  }
  return paths;
}

// Reads the keys of `keys` whose section is `path` from `section` (the Section at that path),
// in table order; the first problem is returned.
template <typename Root>
[[nodiscard]] absl::Status ReadSectionKeys(const Section& section, std::span<const Key<Root>> keys,
                                           absl::string_view path, Root* root) {
  for (const Key<Root>& key : keys) {
    if (key.info.section != path) continue;
    FERRY_RETURN_IF_ERROR(ReadKey(section, key.info, key.field(*root)));
  }
  return absl::OkStatus();
}

// How the dump shows a whole section: as `NAME: hidden_text` instead of its keys when `shown`
// says no (TLS: "tls: <off>").
template <typename Root>
struct SectionDump {
  absl::string_view path;
  bool (*shown)(const Root& root);
  absl::string_view hidden_text;
};

// Appends the YAML-like dump of `root` to *out: one "key: value" line per row, sections as
// nested blocks, indented by `indent` spaces plus two a level.
template <typename Root>
void DumpKeys(std::span<const Key<Root>> keys, std::span<const SectionDump<Root>> sections,
              const Root& root, size_t indent, std::string* out) {
  Root copy = root;  // fields are reached through non-const accessors; the dump only reads
  std::vector<absl::string_view> open;  // the components of the section last written
  std::string hidden;                   // "PATH." of a hidden section: its keys are skipped
  for (const Key<Root>& key : keys) {
    const absl::string_view path = key.info.section;
    if (!hidden.empty() && absl::StartsWith(absl::StrCat(path, "."), hidden)) continue;
    const std::vector<absl::string_view> parts =
        path.empty() ? std::vector<absl::string_view>() : absl::StrSplit(path, '.');
    size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.assign(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(common));
    bool skip = false;
    for (size_t i = common; i < parts.size() && !skip; ++i) {
      const std::string prefix = absl::StrJoin(parts.begin(), parts.begin() + i + 1, ".");
      absl::StrAppend(out, std::string(indent + 2 * i, ' '), parts[i], ":");
      for (const SectionDump<Root>& s : sections) {
        if (s.path == prefix && !s.shown(root)) {
          absl::StrAppend(out, " ", s.hidden_text);
          hidden = absl::StrCat(prefix, ".");
          skip = true;
        }
      }
      absl::StrAppend(out, "\n");
      open.push_back(parts[i]);
    }
    if (skip) continue;
    absl::StrAppend(out, std::string(indent + 2 * parts.size(), ' '),
                    DumpLine(key.info, key.field(copy)), "\n");
  }
}

}  // namespace ferry::config
