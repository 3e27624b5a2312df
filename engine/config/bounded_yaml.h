// The config text as a YAML tree, under the hostile-input budgets of limits.h, and the one place
// where yaml-cpp's exceptions become statuses. Internal to engine/config: nothing outside this
// folder sees a YAML type (connectors read their sections through engine/config/section.h).
//
// The budgets are enforced before any tree exists: the raw text is checked (size, NUL bytes,
// flow-collection openings), then a pass over yaml-cpp's event stream counts nodes, nesting and
// documents and stops at the first one over its limit. Alias expansion ("billion laughs")
// cannot multiply work afterwards: yaml-cpp shares an aliased node, and readers type-check
// every value before they walk it.
#pragma once

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ferry::config {

// " at line L, column C" for a mark yaml-cpp knows, else "".
std::string AtLine(const YAML::Mark& mark);

// Checks `text` against the budgets and loads it as one YAML document. Errors are
// kInvalidArgument starting with `prefix` ("config east.yaml: "): "is 2000000 bytes, over the
// 1MiB limit", "contains a NUL byte at offset 12; not a YAML text file", "has 300 '[' or '{'
// characters, over the limit of 256", "has more than 50000 YAML nodes at line...", "nests maps
// or lists deeper than 32 levels at line...", "holds more than one YAML document...".
// yaml-cpp may throw (syntax errors): call it inside CatchYamlExceptions.
[[nodiscard]] absl::StatusOr<YAML::Node> LoadBoundedYaml(absl::string_view text,
                                                         const std::string& prefix);

// Runs `parse` (which returns absl::StatusOr<T>) and turns any exception it throws into a status
// starting with `prefix`: YAML syntax errors with their line and column, kResourceExhausted for
// std::bad_alloc. Nothing thrown inside escapes.
template <typename T, typename F>
absl::StatusOr<T> CatchYamlExceptions(const std::string& prefix, F&& parse) {
  try {
    return parse();
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML nested too deeply", AtLine(e.mark)));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML syntax error", AtLine(e.mark), ": ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "YAML error", AtLine(e.mark), ": ", e.msg));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(prefix, "out of memory while parsing"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "cannot parse: ", e.what()));
  }
}

}  // namespace ferry::config
