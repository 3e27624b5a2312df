// QuarantineCounter: counts the changes of ferry.quarantine (DESIGN.md, "Operator contract")
// that wait for an operator's decision (status 'pending'), for ferryd's status, metrics and
// status page. The table is created by the rejoin (it may not exist yet): then the count is 0.
//
// Keeps one connection, opened on first use and again after it broke. Thread-safe (calls are
// serialised). Errors: kUnavailable when the database cannot be reached; the count of a table
// whose columns are not the contract's is an error of its own (kInternal).
//
// Example:
//   QuarantineCounter counter(dsn);
//   absl::StatusOr<int64_t> pending = counter.Pending();
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

class QuarantineCounter {
 public:
  explicit QuarantineCounter(std::string dsn) : dsn_(std::move(dsn)) {}
  [[nodiscard]] absl::StatusOr<int64_t> Pending() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::string dsn_;
  absl::Mutex mu_;
  std::unique_ptr<PgConnection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::pg
