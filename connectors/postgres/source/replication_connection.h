// ReplicationConnection: a libpq connection in logical replication mode (replication=database)
// and the walsender commands Ferry uses: IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT,
// START_REPLICATION, and the COPY BOTH stream that follows (CopyData in, standby status
// updates out).
//
// Errors: a lost connection or a server that ends the stream is kUnavailable (reconnect and
// resume); a server error keeps its SQLSTATE's code (common/sqlstate.h).
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::pg {

struct SystemIdentity {
  std::string system_id;  // the cluster's system identifier (decimal)
  uint32_t timeline = 0;
  uint64_t wal_position = 0;  // current WAL flush position
  std::string database;
};

struct CreatedSlot {
  uint64_t consistent_point = 0;
  std::string snapshot_name;  // empty unless exported
};

class ReplicationConnection {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ReplicationConnection>> Connect(
      const std::string& dsn);
  ~ReplicationConnection();

  [[nodiscard]] absl::StatusOr<SystemIdentity> IdentifySystem();

  // Creates a permanent pgoutput slot. With export_snapshot the snapshot stays importable
  // (SET TRANSACTION SNAPSHOT) until this connection runs its next command or closes.
  [[nodiscard]] absl::StatusOr<CreatedSlot> CreateSlot(const std::string& slot,
                                                       bool export_snapshot);

  // Starts streaming: pgoutput protocol 1 with logical decoding messages. `slot` must be a
  // valid slot name ([a-z0-9_]); `publication` is quoted here.
  [[nodiscard]] absl::Status StartReplication(const std::string& slot, uint64_t start_lsn,
                                              const std::string& publication);

  // Waits up to `timeout` (zero: do not wait) for the next CopyData message. nullopt when
  // none arrived in time, or when `wake_fd` (if not -1) turned readable: a stop
  // (StopSignal::wake_fd). The returned view is valid until the next Receive.
  [[nodiscard]] absl::StatusOr<std::optional<absl::string_view>> Receive(absl::Duration timeout,
                                                                         int wake_fd = -1);

  // Sends a standby status update (see walsender_messages.h).
  [[nodiscard]] absl::Status SendStatus(uint64_t written, uint64_t flushed, int64_t now_unix_us,
                                        bool reply_requested);

  PgConnection& connection() { return *conn_; }

 private:
  explicit ReplicationConnection(std::unique_ptr<PgConnection> conn);
  void FreeBuffer();

  std::unique_ptr<PgConnection> conn_;
  char* buffer_ = nullptr;  // libpq-allocated CopyData of the last Receive
};

}  // namespace ferry::pg
