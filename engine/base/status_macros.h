// Status helpers for Ferry. Abseil 20220623 has no status macros, so these are ours.
//
// Errors in Ferry are absl::Status, and the code says what the caller should do:
//   kUnavailable        retry the same call (after backoff): the peer or database is away.
//   kAborted            retry at a higher level (restart the batch / the stream).
//   kFailedPrecondition stop and alert: someone must fix the state (slot gone, table stopped).
//   kDataLoss           stop: stored or received bytes are corrupt.
//   kInvalidArgument    refuse the input (bad config, bad frame, bad admin call).
//
// Example:
//   absl::StatusOr<Config> LoadConfig(const std::string& path) {
//     FERRY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     FERRY_RETURN_IF_ERROR(Validate(text));
//     ...
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FERRY_STATUS_CONCAT_INNER(a, b) a##b
#define FERRY_STATUS_CONCAT(a, b) FERRY_STATUS_CONCAT_INNER(a, b)

// Returns from the current function with the status of `expr` when it is not OK.
#define FERRY_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status ferry_status_ = (expr);         \
    if (!ferry_status_.ok()) return ferry_status_; \
  } while (false)

// `lhs` = the value of the StatusOr `expr`, or return its status when it holds none.
#define FERRY_ASSIGN_OR_RETURN(lhs, expr) \
  FERRY_ASSIGN_OR_RETURN_IMPL(FERRY_STATUS_CONCAT(ferry_statusor_, __LINE__), lhs, expr)
#define FERRY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

namespace ferry {

// Prefixes a status's message with context, keeping its code.
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), std::string(context) + ": " + std::string(s.message()));
}

}  // namespace ferry
