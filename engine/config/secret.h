// Secrets named by the config (passwords, tokens): read once at load time from a file or from an
// environment variable, never from the config text itself, and never printed.
//
// A key pair NAME_file / NAME_env holds one secret (engine/config/section.h reads the pair and
// enforces "at most one"); these functions read the value. Their errors are kInvalidArgument
// whose message is only the reason, and never contain the secret's value.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::config {

// A secret read at load time. `source` says where it came from ("file /run/secrets/pg",
// "env PGPASSWORD_EAST") and may be logged; `value` must never be printed or logged. Both are
// empty when the secret is not set.
struct Secret {
  std::string source;
  std::string value;

  bool is_set() const { return !source.empty(); }
  // What a dump shows instead of the value: "<secret from SOURCE>" or "<unset>".
  std::string Masked() const;
};

// The content of a secret file and the file's mode (for the permission warning).
struct SecretFile {
  std::string value;
  mode_t mode = 0;
};

// Reads the secret file at `path` (absolute; at most kMaxSecretBytes). Trailing "\n" / "\r\n"
// are removed (files written by `echo` or an editor); nothing else is. Errors: "secret file PATH
// cannot open: ...", "secret file PATH is empty", "secret file PATH contains a NUL byte".
[[nodiscard]] absl::StatusOr<SecretFile> ReadSecretFile(const std::string& path);

// The warning for a secret file that group or others may read, or "" when the mode is private.
std::string SecretFileModeWarning(const std::string& path, mode_t mode);

// Reads the environment variable `name` (getenv: call before threads modify the environment).
// Errors: "environment variable NAME is not set", "environment variable NAME is empty".
[[nodiscard]] absl::StatusOr<std::string> ReadSecretEnv(const std::string& name);

// OK for an environment variable name [A-Za-z_][A-Za-z0-9_]* of at most 255 bytes.
[[nodiscard]] absl::Status CheckEnvName(absl::string_view text);

}  // namespace ferry::config
