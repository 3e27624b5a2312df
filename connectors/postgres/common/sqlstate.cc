#include "connectors/postgres/common/sqlstate.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ferry::pg {

absl::StatusCode CodeForSqlState(absl::string_view sqlstate) {
  if (absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P") ||
      absl::StartsWith(sqlstate, "53") || sqlstate == "55006") {
    return absl::StatusCode::kUnavailable;
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
    return absl::StatusCode::kAborted;
  }
  if (sqlstate == "42704" || sqlstate == "42P01" || sqlstate == "42710" || sqlstate == "55000") {
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kInternal;
}

bool IsTransient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kAborted;
}

absl::Status SqlStateError(absl::string_view sqlstate, absl::string_view message,
                           absl::string_view context) {
  return absl::Status(CodeForSqlState(sqlstate),
                      absl::StrCat(context, ": [", sqlstate, "] ", message));
}

bool HasSqlState(const absl::Status& status, absl::string_view sqlstate) {
  return !status.ok() && absl::StrContains(status.message(), absl::StrCat("[", sqlstate, "] "));
}

}  // namespace ferry::pg
