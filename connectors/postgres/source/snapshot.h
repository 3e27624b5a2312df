// The initial snapshot: copies the rows of every published table as they were at a slot's
// consistent point (from the snapshot the slot exported), as Transaction records the apply
// side recognises and applies idempotently. Format (also in README.md, "Snapshot records"):
//
//   * A snapshot record is a Transaction with source_xid 0 (no Postgres transaction has xid 0),
//     source_position = end_position = the slot's consistent point, commit_time_us = when the
//     snapshot started, and exactly one relation (the table). Its rows are one COPY change:
//     the rows as COPY TO gave them, in COPY text format (engine/rows/copy_rows.h), which apply
//     checks and hands to COPY FROM as they are (expanded into INSERTs only where rows are
//     taken one by one: the careful path, a rejoin's quarantine).
//   * The first record of a table starts with a TRUNCATE of the table: the target table is
//     emptied first, so a snapshot that is redone never leaves rows the source no longer has.
//   * Tables with a unique key (a primary key or a replica identity index): every chunk is a
//     complete transaction of its own (fragment 0, last_fragment), copied in parallel; apply
//     applies its rows as upserts on that key, so replaying any chunk changes nothing.
//   * Tables without one: the whole table is ONE transaction split into fragments (numbered,
//     the last with last_fragment), appended contiguously after the keyed tables; apply treats
//     it like any large transaction (all or nothing; its leading TRUNCATE makes a replay from
//     fragment 0 idempotent).
//
// Progress: after a table's last record is appended, source state "<prefix>table/<schema>.
// <name>" is set to "done <consistent point>". Tables already marked done for the same
// consistent point are skipped, so a retry with the same exported snapshot resumes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "connectors/postgres/source/catalog.h"
#include "engine/api/source.h"
#include "proto/change.pb.h"

namespace ferry::pg {

struct SnapshotOptions {
  std::string dsn;            // normal connection string
  std::string snapshot_name;  // from CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')
  uint64_t consistent_point = 0;
  std::string origin_region;
  int64_t snapshot_time_us = 0;
  size_t max_chunk_rows = 10000;
  size_t max_chunk_bytes = 8 << 20;
  int parallelism = 2;       // connections copying keyed tables at once
  std::string state_prefix;  // prefix of the PutSourceState keys
  // Called (from the copying threads) after each chunk of a table is durable with the rows it
  // held, and once with done when the table is complete (or was complete already). Optional.
  std::function<void(const PublishedTable& table, uint64_t rows, bool done)> progress;
};

struct SnapshotTable {
  PublishedTable table;
  v1::Relation relation;  // as pgoutput would announce it (DescribeTable + BuildRelation)
};

// A connection inside a REPEATABLE READ transaction on the exported snapshot: what it reads
// (the published tables and their definitions included) is the database at the consistent
// point, not at the moment of the query.
[[nodiscard]] absl::StatusOr<std::unique_ptr<PgConnection>> OpenSnapshotConnection(
    const SnapshotOptions& options);

// True when the relation has a unique key apply can upsert on.
bool HasUpsertKey(const v1::Relation& relation);

// Copies every table (see the file comment). Returns the first error (the others stop
// promptly); kCancelled when `stop` was set. Errors of the copy connections are kUnavailable
// (the caller may retry while the exported snapshot lives).
[[nodiscard]] absl::Status CopyTables(const SnapshotOptions& options,
                                      const std::vector<SnapshotTable>& tables,
                                      CaptureTarget& target, const StopSignal& stop);

std::string SnapshotTableStateKey(const std::string& prefix, const PublishedTable& table);

}  // namespace ferry::pg
