// Pipeline: a libpq connection kept in pipeline mode (libpq 15) for the sink's hot path.
// Statements are queued without waiting for their results; Sync() sends a sync point and
// reads every outstanding result, in order, handing each to the callback the statement was
// queued with. Prepared statements are created on first use and cached by SQL text.
//
// Thread safety: one thread at a time (libpq's rule).
#pragma once

#include <libpq-fe.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg_sink {

// A statement's outcome as the callback sees it.
struct StatementResult {
  bool ok = false;
  bool aborted = false;  // skipped because an earlier statement of the pipeline failed
  std::string sqlstate;  // on error
  std::string message;   // on error: the server's primary message
  int64_t rows = 0;      // affected rows (INSERT/UPDATE/DELETE)
  pg::PgResult result;   // the result itself (for queries)
};
using ResultCallback = std::function<void(StatementResult&)>;

class Pipeline {
 public:
  // Connects and enters pipeline mode. kUnavailable when the server cannot be reached.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Pipeline>> Connect(const std::string& dsn);
  ~Pipeline();

  // Queues `sql` with text parameters (nullopt = NULL). Unprepared: for one-off statements.
  [[nodiscard]] absl::Status Send(const std::string& sql,
                                  const std::vector<std::optional<std::string>>& params,
                                  ResultCallback callback = nullptr);
  // As Send, through a prepared statement named after the SQL text (prepared on first use).
  [[nodiscard]] absl::Status SendPrepared(const std::string& sql,
                                          const std::vector<const std::string*>& params,
                                          ResultCallback callback = nullptr);
  // Sends a sync point and reads every outstanding result. Errors: kUnavailable when the
  // connection broke (the pipeline is then unusable). Statement errors are not errors of Sync:
  // they reach the callbacks.
  [[nodiscard]] absl::Status Sync();
  // Runs one statement now (Send + Sync) and returns its result; a statement error becomes a
  // status (code by SQLSTATE, connectors/postgres/common/sqlstate.h; kAborted when the pipeline
  // skipped it after an earlier error).
  [[nodiscard]] absl::StatusOr<StatementResult> Run(
      const std::string& sql, const std::vector<std::optional<std::string>>& params = {});

  // Runs `copy_sql` (COPY ... FROM STDIN) with `data` in COPY text format, after a Sync() of
  // everything queued (COPY cannot run inside a pipeline: the connection leaves pipeline mode
  // for it and enters it again). The statement's outcome goes to the returned result, like a
  // callback's; errors of the call itself are connection errors (kUnavailable).
  [[nodiscard]] absl::StatusOr<StatementResult> Copy(const std::string& copy_sql,
                                                     std::string_view data);

  // Drops every prepared statement (on the server too, queued as DEALLOCATE ALL): the next use
  // prepares again. Needed after DDL, since a statement keeps its parameter types.
  void ForgetPrepared();

  size_t outstanding() const { return pending_.size(); }
  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }

 private:
  explicit Pipeline(PGconn* conn) : conn_(conn) {}
  struct Pending {
    bool sync = false;
    ResultCallback callback;
  };
  absl::Status ConnectionError(const std::string& context) const;

  PGconn* conn_;                  // owned
  std::vector<Pending> pending_;  // in send order
  size_t pending_head_ = 0;
  absl::flat_hash_map<std::string, std::string> prepared_;  // SQL -> statement name
  uint64_t next_statement_ = 0;
};

}  // namespace ferry::pg_sink
