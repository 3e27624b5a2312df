// Builders of hand-made Ferry transactions for the sink's tests, and helpers that write them
// into a real inbound DurableLog. Test-only (ferry::postgres_testing).
//
// Example:
//   const v1::Relation kv = Relation(1, "public", "kv", {{"k", "integer", true}, {"v", "text"}});
//   FERRY_ASSIGN_OR_RETURN(uint64_t last, AppendTxns(log, {Txn({kv}, {Insert(1, {"1", "a"})})}));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/log/durable_log.h"
#include "proto/change.pb.h"

namespace ferry::sink_test {

struct Col {
  std::string name;
  std::string type;
  bool key = false;
  bool not_null = false;
};

v1::Relation Relation(uint32_t id, const std::string& schema, const std::string& name,
                      const std::vector<Col>& cols,
                      v1::ReplicaIdentity identity = v1::REPLICA_IDENTITY_DEFAULT);

// Values: nullopt is NULL; the string "\x01TOAST" is an unchanged TOAST marker.
inline const std::string kToast = "\x01TOAST";
using Values = std::vector<std::optional<std::string>>;
v1::Tuple Tuple(const Values& values);

v1::Change Insert(uint32_t rel, const Values& row);
v1::Change Update(uint32_t rel, const Values& row, std::optional<Values> old = std::nullopt,
                  bool old_key_only = false);
v1::Change Delete(uint32_t rel, const Values& old, bool old_key_only = true);
v1::Change Truncate(const std::vector<uint32_t>& rels);
// A "ferry.ddl" message as the capture passes it on (proto/pg_messages.proto): `query` holds
// one statement with tag `tag`; `tables` as (schema, name); `authenticated` as the capture set it.
v1::Change DdlMessage(const std::string& tag, const std::string& query,
                      const std::vector<std::pair<std::string, std::string>>& tables,
                      bool authenticated = true);

v1::Transaction Txn(const std::vector<v1::Relation>& relations,
                    const std::vector<v1::Change>& changes, int64_t commit_time_us = 0);

// Appends each transaction as one record; returns the seq of the last record.
absl::StatusOr<uint64_t> AppendTxns(DurableLog& log, const std::vector<v1::Transaction>& txns,
                                    RecordKind kind = RecordKind::kTransaction);
absl::StatusOr<uint64_t> AppendHeartbeat(DurableLog& log, uint64_t position);

}  // namespace ferry::sink_test
