#include "engine/config/section.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/bounded_yaml.h"
#include "engine/config/limits.h"
#include "engine/config/section_internal.h"

namespace ferry::config {
namespace {

// A key as written by the user, for messages: escaped and truncated.
std::string PrintableKey(absl::string_view key) {
  if (key.size() <= kMaxQuotedBytes) return absl::CEscape(key);
  return absl::StrCat(absl::CEscape(key.substr(0, kMaxQuotedBytes)), "...");
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

// Levenshtein distance, for "did you mean". Inputs are short (callers bound them).
size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// config SOURCE: key 'PATH': REASON (line L, column C)
absl::Status KeyError(const LoadContext& context, absl::string_view key_path,
                      absl::string_view reason, const YAML::Node* at) {
  std::string message = absl::StrCat("config ", context.source, ": key '", key_path, "': ", reason);
  if (at != nullptr && at->IsDefined()) {
    const YAML::Mark mark = at->Mark();
    if (!mark.is_null()) {
      absl::StrAppend(&message, " (line ", mark.line + 1, ", column ", mark.column + 1, ")");
    }
  }
  return absl::InvalidArgumentError(message);
}

// "unknown key", and why: a known key of another section (probably mis-indented), or a near
// miss of a key of this one.
std::string UnknownKeyReason(const LoadContext& context, absl::string_view path,
                             absl::string_view key) {
  std::string reason = "unknown key";
  for (const SectionKeys& other : context.schema) {
    if (other.path == path) continue;
    if (std::find(other.keys.begin(), other.keys.end(), key) != other.keys.end()) {
      return absl::StrCat(reason, "; '", key, "' belongs ",
                          other.path.empty() ? std::string("at the top level")
                                             : absl::StrCat("under '", other.path, "'"),
                          " (check the indentation)");
    }
  }
  // A near miss: edit distance <= 2 (case ignored), or the typed key is a known key without its
  // suffix ("cert" for "cert_file").
  if (key.size() <= 40) {
    const std::string lower = absl::AsciiStrToLower(key);
    for (const SectionKeys& same : context.schema) {
      if (same.path != path) continue;
      absl::string_view best;
      size_t best_distance = 3;
      for (absl::string_view candidate : same.keys) {
        const size_t d = EditDistance(lower, candidate);
        if (d < best_distance) {
          best_distance = d;
          best = candidate;
        }
      }
      for (absl::string_view candidate : same.keys) {
        if (best.empty() && !lower.empty() && absl::StartsWith(candidate, lower + "_")) {
          best = candidate;
        }
      }
      if (!best.empty()) absl::StrAppend(&reason, "; did you mean '", best, "'?");
    }
  }
  return reason;
}

// The text of a scalar value, refused when it is not a scalar, too long or holds a NUL.
absl::StatusOr<std::string> ScalarText(const LoadContext& context, const YAML::Node& node,
                                       absl::string_view key_path, absl::string_view expected) {
  if (node.IsNull()) {
    return KeyError(context, key_path, absl::StrCat("expected ", expected, ", got no value"),
                    &node);
  }
  if (node.IsMap()) {
    return KeyError(context, key_path, absl::StrCat("expected ", expected, ", got a map"), &node);
  }
  if (node.IsSequence()) {
    return KeyError(context, key_path, absl::StrCat("expected ", expected, ", got a list"), &node);
  }
  const std::string& text = node.Scalar();
  if (text.size() > kMaxStringBytes) {
    return KeyError(
        context, key_path,
        absl::StrCat("value is ", text.size(), " bytes, over the ", kMaxStringBytes, "-byte limit"),
        &node);
  }
  if (text.find('\0') != std::string::npos) {
    return KeyError(context, key_path, "value contains a NUL character", &node);
  }
  return text;
}

}  // namespace

absl::StatusOr<Section> SectionAccess::Open(LoadContext* context, const YAML::Node* node,
                                            std::string path, std::span<const std::string> known,
                                            bool skip_unknown_maps) {
  auto rep = std::make_shared<Section::Rep>();
  rep->context = context;
  rep->path = std::move(path);
  // An absent section, or one with only commented-out keys (null), is an empty section.
  if (node == nullptr || node->IsNull()) return Section(std::move(rep));
  const std::string what =
      rep->path.empty() ? std::string("the top level") : absl::StrCat("key '", rep->path, "'");
  if (!node->IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", context->source, ": ", what, ": expected a map of keys, got ",
        node->IsSequence() ? "a list" : absl::StrCat("the scalar ", Quote(node->Scalar())),
        AtLine(node->Mark())));
  }
  std::vector<std::string> skipped;
  for (const auto& entry : *node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat("config ", context->source, ": ", what,
                                                     ": every key must be a plain string",
                                                     AtLine(key.Mark())));
    }
    const std::string& name = key.Scalar();
    const bool is_known = std::find(known.begin(), known.end(), name) != known.end();
    const bool skip =
        !is_known && skip_unknown_maps && (entry.second.IsMap() || entry.second.IsNull());
    if (!is_known && !skip) {
      return KeyError(*context, JoinPath(rep->path, PrintableKey(name)),
                      UnknownKeyReason(*context, rep->path, name), &key);
    }
    if (rep->Find(name) != nullptr ||
        std::find(skipped.begin(), skipped.end(), name) != skipped.end()) {
      return KeyError(*context, JoinPath(rep->path, name), "is set twice (duplicate key)", &key);
    }
    if (skip) {
      skipped.push_back(name);
    } else {
      rep->entries.emplace_back(name, entry.second);
    }
  }
  return Section(std::move(rep));
}

const std::string& Section::path() const { return rep_->path; }

std::string Section::KeyPath(absl::string_view key) const { return JoinPath(rep_->path, key); }

bool Section::Has(absl::string_view key) const { return rep_->Find(key) != nullptr; }

absl::Status Section::Error(absl::string_view key, absl::string_view reason) const {
  return KeyError(*rep_->context, KeyPath(key), reason, rep_->Find(key));
}

void Section::Warn(absl::string_view key, absl::string_view what) const {
  rep_->context->warnings.push_back(
      absl::StrCat("config ", rep_->context->source, ": key '", KeyPath(key), "': ", what));
}

absl::Status Section::GetString(absl::string_view key, Need need, Check check,
                                std::string* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) {
    return need == Need::kRequired ? Error(key, "is required") : absl::OkStatus();
  }
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*rep_->context, *node, path, "a string"));
  if (check != nullptr) {
    if (absl::Status st = check(text); !st.ok()) {
      return KeyError(*rep_->context, path, st.message(), node);
    }
  }
  *out = std::move(text);
  return absl::OkStatus();
}

absl::Status Section::GetInt(absl::string_view key, int64_t min, int64_t max, int64_t* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*rep_->context, *node, path, "an integer"));
  absl::StatusOr<int64_t> value = ParseInteger(text);
  if (!value.ok()) return KeyError(*rep_->context, path, value.status().message(), node);
  if (*value < min || *value > max) {
    return KeyError(*rep_->context, path,
                    absl::StrCat("must be between ", min, " and ", max, ", got ", *value), node);
  }
  *out = *value;
  return absl::OkStatus();
}

absl::Status Section::GetInt(absl::string_view key, int min, int max, int* out) const {
  int64_t value = *out;
  FERRY_RETURN_IF_ERROR(GetInt(key, int64_t{min}, int64_t{max}, &value));
  *out = static_cast<int>(value);
  return absl::OkStatus();
}

absl::Status Section::GetSize(absl::string_view key, uint64_t min, uint64_t max,
                              uint64_t* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*rep_->context, *node, path, "a byte size"));
  absl::StatusOr<uint64_t> value = ParseByteSize(text);
  if (!value.ok()) return KeyError(*rep_->context, path, value.status().message(), node);
  if (*value < min || *value > max) {
    return KeyError(*rep_->context, path,
                    absl::StrCat("must be between ", FormatBytes(min), " and ", FormatBytes(max),
                                 ", got ", Quote(text)),
                    node);
  }
  *out = *value;
  return absl::OkStatus();
}

absl::Status Section::GetBool(absl::string_view key, bool* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text,
                         ScalarText(*rep_->context, *node, path, "true or false"));
  absl::StatusOr<bool> value = ParseBool(text);
  if (!value.ok()) return KeyError(*rep_->context, path, value.status().message(), node);
  *out = *value;
  return absl::OkStatus();
}

absl::Status Section::GetEnum(absl::string_view key, Need need, const EnumRef& out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) {
    return need == Need::kRequired ? Error(key, "is required") : absl::OkStatus();
  }
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text,
                         ScalarText(*rep_->context, *node, path, EnumChoices(out.names())));
  absl::StatusOr<size_t> index = ParseEnum(text, out.names());
  if (!index.ok()) return KeyError(*rep_->context, path, index.status().message(), node);
  out.Set(*index);
  return absl::OkStatus();
}

absl::Status Section::GetHostPort(absl::string_view key, Need need, bool allow_port_0,
                                  HostPort* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) {
    return need == Need::kRequired ? Error(key, "is required") : absl::OkStatus();
  }
  const std::string path = KeyPath(key);
  FERRY_ASSIGN_OR_RETURN(std::string text, ScalarText(*rep_->context, *node, path, "HOST:PORT"));
  absl::StatusOr<HostPort> parsed = ParseHostPort(text);
  if (!parsed.ok()) return KeyError(*rep_->context, path, parsed.status().message(), node);
  if (!allow_port_0 && parsed->port == 0) {
    return KeyError(*rep_->context, path, "port 0 is allowed only for listen addresses", node);
  }
  *out = *std::move(parsed);
  return absl::OkStatus();
}

absl::Status Section::GetStringList(absl::string_view key, const ListSpec& spec,
                                    std::vector<std::string>* out) const {
  const YAML::Node* node = rep_->Find(key);
  if (node == nullptr) return absl::OkStatus();
  const std::string path = KeyPath(key);
  if (node->IsNull()) return absl::OkStatus();  // "tables:" with nothing = empty list
  if (!node->IsSequence()) {
    return KeyError(*rep_->context, path, absl::StrCat("expected a list of ", spec.item, " names"),
                    node);
  }
  std::vector<std::string> items;
  for (size_t i = 0; i < node->size(); ++i) {
    const YAML::Node item = (*node)[i];
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    FERRY_ASSIGN_OR_RETURN(std::string text,
                           ScalarText(*rep_->context, item, item_path, spec.item));
    if (spec.check != nullptr) {
      if (absl::Status st = spec.check(text); !st.ok()) {
        return KeyError(*rep_->context, item_path, st.message(), &item);
      }
    }
    if (std::find(items.begin(), items.end(), text) != items.end()) {
      return KeyError(*rep_->context, item_path,
                      absl::StrCat(spec.item_noun, " ", Quote(text), " is listed twice"), &item);
    }
    items.push_back(std::move(text));
  }
  *out = std::move(items);
  return absl::OkStatus();
}

absl::Status Section::GetSecret(absl::string_view name, Secret* out) const {
  const std::string file_key = absl::StrCat(name, "_file");
  const std::string env_key = absl::StrCat(name, "_env");
  std::string file;
  std::string env;
  FERRY_RETURN_IF_ERROR(GetString(file_key, Need::kOptional, CheckAbsolutePath, &file));
  FERRY_RETURN_IF_ERROR(GetString(env_key, Need::kOptional, CheckEnvName, &env));
  if (Has(file_key) && Has(env_key)) {
    return Error(env_key, absl::StrCat("set only one of '", file_key, "' and '", env_key, "'"));
  }
  if (!file.empty()) {
    absl::StatusOr<SecretFile> secret = ReadSecretFile(file);
    if (!secret.ok()) return Error(file_key, secret.status().message());
    if (std::string warning = SecretFileModeWarning(file, secret->mode); !warning.empty()) {
      Warn(file_key, warning);
    }
    out->source = absl::StrCat("file ", file);
    out->value = std::move(secret->value);
  } else if (!env.empty()) {
    absl::StatusOr<std::string> value = ReadSecretEnv(env);
    if (!value.ok()) return Error(env_key, value.status().message());
    out->source = absl::StrCat("env ", env);
    out->value = *std::move(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<Section> Section::Child(absl::string_view key,
                                       std::span<const std::string> known) const {
  return SectionAccess::Open(rep_->context, rep_->Find(key), KeyPath(key), known,
                             /*skip_unknown_maps=*/false);
}

}  // namespace ferry::config
