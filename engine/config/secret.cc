#include "engine/config/secret.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/config/bounded_file.h"
#include "engine/config/limits.h"
#include "engine/config/value_parsers.h"

namespace ferry::config {

std::string Secret::Masked() const {
  return is_set() ? absl::StrCat("<secret from ", source, ">") : "<unset>";
}

absl::StatusOr<SecretFile> ReadSecretFile(const std::string& path) {
  SecretFile secret;
  FileInfo info;
  if (absl::Status st = ReadRegularFile(path, kMaxSecretBytes, &secret.value, &info); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("secret file ", path, " ", st.message()));
  }
  std::string& value = secret.value;
  // Files written by `echo` or editors end with a newline that is not part of the secret.
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("secret file ", path, " is empty"));
  }
  if (value.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("secret file ", path, " contains a NUL byte"));
  }
  secret.mode = info.mode;
  return secret;
}

std::string SecretFileModeWarning(const std::string& path, mode_t mode) {
  if ((mode & (S_IRGRP | S_IROTH)) == 0) return "";
  return absl::StrCat("secret file ", path, " is readable by group or others (mode 0",
                      (mode >> 6) & 7, (mode >> 3) & 7, mode & 7, "); chmod 600 is recommended");
}

absl::StatusOr<std::string> ReadSecretEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is not set"));
  }
  if (*value == '\0') {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " is empty"));
  }
  return std::string(value);
}

absl::Status CheckEnvName(absl::string_view s) {
  if (s.empty() || s.size() > 255 || absl::ascii_isdigit(static_cast<unsigned char>(s[0])) ||
      !std::all_of(s.begin(), s.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
      })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an environment variable name [A-Za-z_][A-Za-z0-9_]*, got ", Quote(s)));
  }
  return absl::OkStatus();
}

}  // namespace ferry::config
