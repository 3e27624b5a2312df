// PostgresQuarantine: the quarantine of a Postgres region (engine/api/quarantine.h), the table
// ferry.quarantine of sql/ddl_capture.sql (installed on first use; that needs a superuser).
//
// Rows as JSON text: every column's value as text (or null), from row_to_json through
// json_each_text, the form the stream carries them in. A key names a row through
// json_populate_record(NULL::table, key), so each value is read by its column's own type.
//
// Reapply (docs/operations.md, "Quarantine") runs the kept source transaction's changes in order
// in one transaction through normal SQL (so it replicates): an insert must add its row, an update
// or a delete must find its row, and each key's row must still be what the rejoin recorded as the
// primary's (current_row); otherwise nothing is written and the reply says which change
// conflicts and why. Truncates are reapplied as TRUNCATE.
//
// Each call opens its own short connection (application_name ferry_quarantine).
#pragma once

#include <memory>
#include <string>

#include "engine/api/quarantine.h"

namespace ferry::pg {

class PgConnection;

class PostgresQuarantine final : public QuarantineStore {
 public:
  // `dsn`: a normal connection string of the region's database.
  explicit PostgresQuarantine(std::string dsn) : dsn_(std::move(dsn)) {}

  absl::StatusOr<std::vector<std::optional<std::string>>> CurrentRows(
      const std::vector<v1::QuarantinedChange>& changes) override;
  absl::StatusOr<Kept> Keep(const std::string& source_region,
                            const std::vector<v1::QuarantinedChange>& changes) override;
  absl::StatusOr<v1::QuarantineReply> Decide(const v1::QuarantineRequest& request) override;
  absl::StatusOr<std::vector<bool>> Explains(
      const std::string& source_region, const std::vector<v1::QuarantinedChange>& keys) override;
  absl::StatusOr<uint64_t> Pending() override;

 private:
  absl::StatusOr<std::unique_ptr<PgConnection>> Connect() const;
  const std::string dsn_;
};

}  // namespace ferry::pg
