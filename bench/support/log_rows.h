// What a durable log holds of a benchmark's workload: its row changes and the transactions that
// hold them, counted as the engine counts them (CountTransaction: INSERT, UPDATE, DELETE and
// TRUNCATE). The capture's own transactions (the DDL message of the REPLICA IDENTITY FULL it
// sets on a keyless table, sequence values) hold none and are not counted.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/base/status_macros.h"
#include "engine/log/durable_log.h"
#include "engine/stats/table_counts.h"
#include "proto/change.pb.h"

namespace ferry::bench {

struct LogRows {
  uint64_t changes = 0;
  uint64_t transactions = 0;  // complete ones holding row changes
  uint64_t last_seq = 0;      // the log's last record, of any kind
  uint64_t last_end_lsn = 0;  // end position of the last transaction counted
};

inline absl::StatusOr<LogRows> CountLogRows(const DurableLog& log) {
  LogRows rows;
  uint64_t next = log.first_seq();
  uint64_t in_transaction = 0;  // row changes in the current transaction's fragments so far
  while (next < log.next_seq()) {
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> records, log.Read(next, 4096, 64 << 20));
    for (const LogRecord& r : records) {
      next = r.seq + 1;
      rows.last_seq = r.seq;
      if (r.kind != RecordKind::kTransaction) continue;
      v1::Transaction t;
      if (!t.ParseFromString(r.payload)) return absl::DataLossError("unparsable record");
      if (t.fragment() == 0) in_transaction = 0;
      TableCountDelta delta;
      CountTransaction(t, delta);
      for (const auto& [table, count] : delta) in_transaction += count.changes;
      if (!t.last_fragment() || in_transaction == 0) continue;
      rows.changes += in_transaction;
      ++rows.transactions;
      rows.last_end_lsn = std::max(rows.last_end_lsn, t.end_position());
    }
  }
  return rows;
}

}  // namespace ferry::bench
