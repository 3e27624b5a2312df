// TPC-B change records for the stream benchmark: serialized ferry::v1::Transaction payloads
// shaped like what the Postgres source captures from `pgbench` (the built-in TPC-B script):
// three UPDATEs (pgbench_accounts, pgbench_tellers, pgbench_branches) and one INSERT into
// pgbench_history, with the four relations carried in every transaction as the source emits
// them (proto/change.proto), values in pgoutput text form.
//
// Deterministic: the same seed yields the same records, so runs compare like with like.
//
// Example:
//   TpcbRecordMaker maker({.scale = 100, .seed = 1});
//   std::string payload = maker.Next();  // one RECORD_TRANSACTION payload
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace ferry::bench {

struct TpcbOptions {
  // pgbench scale factor: 100000 accounts, 10 tellers and 1 branch per unit.
  int scale = 100;
  uint64_t seed = 1;
  std::string origin_region = "east";
  uint64_t epoch = 1;
};

// Not thread-safe.
class TpcbRecordMaker {
 public:
  explicit TpcbRecordMaker(const TpcbOptions& options);

  // The next transaction, serialized; commit positions and times grow with every call.
  std::string Next();

 private:
  const TpcbOptions options_;
  std::mt19937_64 rng_;
  uint64_t lsn_ = 0x16B3740;
  uint32_t xid_ = 1000;
  int64_t commit_time_us_ = 1714563296000000;  // 2024-05-01 11:34:56 UTC
};

}  // namespace ferry::bench
