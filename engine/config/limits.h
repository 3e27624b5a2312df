// Input limits of the config loader. A config is a few KiB; these only stop hostile or broken
// input (docs/config.md, "Hostile or broken input", says what each one prevents). Connector
// sections are read under the same limits: they are part of the same document.
#pragma once

#include <cstddef>

namespace ferry::config {

// The whole file, checked before parsing.
inline constexpr size_t kMaxConfigBytes = 1 << 20;
// '[' and '{' characters anywhere in the text, checked before parsing: yaml-cpp queues every
// token of an open flow collection (about 250 bytes each) before it reports any of them.
inline constexpr size_t kMaxFlowOpenings = 256;
// YAML nodes (scalars, maps, lists, aliases), counted on the parser's events before any tree
// is built.
inline constexpr size_t kMaxConfigNodes = 50'000;
// Maps and lists nested in one another.
inline constexpr int kMaxNesting = 32;
// Any single string value.
inline constexpr size_t kMaxStringBytes = 4096;
// One secret file, and each TLS file.
inline constexpr size_t kMaxSecretBytes = 64 << 10;
// How much of a user-supplied value or key an error message repeats.
inline constexpr size_t kMaxQuotedBytes = 64;

}  // namespace ferry::config
