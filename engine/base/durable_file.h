// Replacing a small file so that a crash leaves either the old or the new content, never a mix
// (the region's state, the file quarantine): the new text goes to PATH.tmp, is synced, and is
// renamed over PATH; then the directory is synced so that the rename itself survives a crash.
//
// The two steps are separate because what a failure of the directory's sync means is the
// caller's: after the rename, nobody knows which content a crash leaves.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ferry {

// Writes and syncs PATH.tmp, then renames it over `path`. kUnavailable (with errno's text) when
// a step fails; `path` is then unchanged.
[[nodiscard]] absl::Status ReplaceFileContents(const std::string& path, absl::string_view text);

// Syncs the directory holding `path` (after a rename into it). kUnavailable when it fails.
[[nodiscard]] absl::Status SyncParentDirectory(const std::string& path);

}  // namespace ferry
