// The Postgres side of the verifier: a session that reads one region's database at the verify's
// cut, its catalog (TableSchema), and its tables in key order (PgTableSide).
//
// A VerifySession holds one connection inside a REPEATABLE READ READ ONLY transaction, either on
// a snapshot exported by the cut (SET TRANSACTION SNAPSHOT) or on its own. The session fixes the
// settings that shape values' text (DateStyle, IntervalStyle, TimeZone, extra_float_digits,
// bytea_output, client_encoding), so both regions print the same value the same way.
//
// Thread safety: one thread at a time; a PgTableSide uses its session's connection.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/postgres/common/pg_connection.h"
#include "consistency/leaf_index.h"
#include "consistency/peer.h"
#include "consistency/schema.h"

namespace ferry::consistency {

// The SET statements that fix values' text (both regions, every verify connection).
const char* VerifySessionSettings();

class VerifySession {
 public:
  // Connects and begins the transaction, on `snapshot` when given (kFailedPrecondition when
  // Postgres no longer knows it: the exporting transaction ended). kUnavailable: no database.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<VerifySession>> Open(
      const std::string& dsn, const std::optional<std::string>& snapshot);

  // The ordinary tables and partitioned roots outside the system schemas and `ferry`.
  [[nodiscard]] absl::StatusOr<std::vector<TableName>> ListTables();
  // kNotFound when the table does not exist.
  [[nodiscard]] absl::StatusOr<TableSchema> ReadSchema(const TableName& table);

  pg::PgConnection& connection() { return *conn_; }

  // Asks Postgres to cancel the statement this session runs now, if any (pg_cancel_backend of
  // its backend; nothing when it runs none). Thread safety: any thread, at any time, while
  // another uses the session (libpq's PQcancel is made for that).
  void Cancel();

  ~VerifySession();
  VerifySession(const VerifySession&) = delete;
  VerifySession& operator=(const VerifySession&) = delete;

 private:
  explicit VerifySession(std::unique_ptr<pg::PgConnection> conn);
  std::unique_ptr<pg::PgConnection> conn_;
  PGcancel* const cancel_;  // owned; made once, read-only for PQcancel
};

// One line of COPY's text format, split into its fields and unescaped (\N is NULL; \\, \b, \f,
// \n, \r, \t, \v as COPY writes them). Fields are valid until the next Parse.
class CopyLine {
 public:
  explicit CopyLine(int columns) : fields_(columns), unescaped_(columns) {}
  // kDataLoss when the line does not hold exactly `columns` fields.
  [[nodiscard]] absl::Status Parse(absl::string_view line);
  const std::optional<absl::string_view>& field(int c) const { return fields_[c]; }

 private:
  std::vector<std::optional<absl::string_view>> fields_;
  std::vector<std::string> unescaped_;
};

// One table read through a VerifySession. The index scan streams the whole table through COPY;
// the ranges read afterwards (only the rows a digest or a differing leaf needs) go through a
// cursor in batches.
class PgTableSide : public IndexedTableSide {
 public:
  // `spec` comes from PlanTable (and on the standby from the primary, so it is checked here:
  // kInvalidArgument names a column or key this table lacks).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PgTableSide>> Create(VerifySession& session,
                                                                           const TableSpec& spec);
  // Bytes of values read (text), for the metrics.
  uint64_t bytes_read() const { return bytes_read_; }
  // Called before a scan's first statement and after each batch of rows it fetches; a non-OK
  // status (the verify was cancelled) ends the scan with it.
  void set_between_batches(std::function<absl::Status()> check) {
    between_batches_ = std::move(check);
  }

 protected:
  absl::Status Scan(const KeyRange& range, bool all_keys, int leaf_bits,
                    const RowCallback& row) override;

 private:
  PgTableSide(VerifySession& session, TableSpec spec, std::vector<bool> key_collatable);
  // The whole of `query` (a SELECT in key order of `columns` columns) through COPY.
  template <typename HashRow, typename Paced>
  absl::Status ScanByCopy(const std::string& query, int columns, HashRow& hash_row, Paced& paced);
  std::string KeyExpressions() const;

  VerifySession& session_;
  const TableSpec spec_;
  const std::vector<bool> key_collatable_;  // per key column: has a collation here
  std::vector<int> key_positions_;          // of the key columns among spec_.columns
  uint64_t bytes_read_ = 0;
  std::function<absl::Status()> between_batches_;
};

}  // namespace ferry::consistency
