// PrimaryCut: the primary's half of the verify's consistent cut (docs/verify.md).
//
// A temporary logical slot created on a replication connection with an exported snapshot gives
// a snapshot and the position L that splits the source's history: a transaction whose commit
// record is before L is in the snapshot, every other one comes after it in the stream (Ferry's
// records carry that commit position as source_position). The standby's apply holds before
// the first transaction at or after L (ApplyScheduler::SetCut). Then a transactional logical
// message ("ferry_verify", never replayed by apply) is committed after L, so that the standby
// sees a transaction at or after L even when the database is idle.
//
// Creating the slot waits for the transactions running on the primary that hold a transaction
// id; `timeout` bounds that wait (kDeadlineExceeded, the creation is cancelled). The snapshot is
// importable (VerifySession::Open) until Release() or destruction, which also drops the slot.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "connectors/postgres/common/pg_connection.h"

namespace ferry::consistency {

class PrimaryCut {
 public:
  // `slot_name`: [a-z0-9_], at most 63 bytes (kInvalidArgument otherwise).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PrimaryCut>> Create(
      const std::string& dsn, const std::string& slot_name, absl::Duration timeout);

  uint64_t position() const { return position_; }
  const std::string& snapshot() const { return snapshot_; }

  // Commits the marker message after the cut (on its own connection). Returns its commit
  // position's text for the log.
  [[nodiscard]] absl::Status CommitMarker(const std::string& dsn, const std::string& id);
  // Drops the slot (closes the replication connection); the snapshot stays valid only in the
  // transactions that imported it.
  // Drops the slot (on its own connection, so it is gone when Release returns; a failure there
  // still closes the connection, which drops it as the walsender exits) and closes it.
  void Release();

 private:
  PrimaryCut(std::unique_ptr<pg::PgConnection> conn, std::string slot_name, uint64_t position,
             std::string snapshot)
      : conn_(std::move(conn)),
        slot_name_(std::move(slot_name)),
        position_(position),
        snapshot_(std::move(snapshot)) {}

  std::unique_ptr<pg::PgConnection> conn_;
  std::string slot_name_;
  uint64_t position_;
  std::string snapshot_;
};

}  // namespace ferry::consistency
