// Decoder of the pgoutput logical replication protocol, version 1 (Postgres 10 and later;
// spec: "Logical Replication Message Formats" in the Postgres manual). Pure: bytes in,
// messages out; no I/O, no state.
//
// Every message of proto_version 1 is decoded: Begin 'B', Commit 'C', Origin 'O', Relation 'R',
// Type 'Y', Insert 'I', Update 'U', Delete 'D', Truncate 'T', logical decoding Message 'M'.
// Column values keep their meaning: 'n' NULL, 'u' unchanged TOASTed value, 't' text, 'b' binary.
//
// Bad input is refused: a truncated buffer, an unknown message or tuple kind, a negative or
// oversized length, a column count above the limit or trailing bytes give kDataLoss naming the
// message type and the byte offset. The decoder never reads outside the buffer.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(PgOutputMessage m, DecodePgOutput(xlog_data_payload));
//   if (auto* insert = std::get_if<InsertMessage>(&m)) { ... insert->new_tuple ... }
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/change.pb.h"

namespace ferry::pg {

struct BeginMessage {
  uint64_t final_lsn = 0;      // the commit record's LSN
  int64_t commit_time_us = 0;  // Unix epoch microseconds (converted from the Postgres epoch)
  uint32_t xid = 0;
};

struct CommitMessage {
  uint8_t flags = 0;
  uint64_t commit_lsn = 0;
  uint64_t end_lsn = 0;        // just past the commit record
  int64_t commit_time_us = 0;  // Unix epoch microseconds
};

struct OriginMessage {
  uint64_t origin_commit_lsn = 0;
  std::string name;
};

struct RelationColumn {
  bool part_of_key = false;
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
};

struct RelationMessage {
  uint32_t relation_id = 0;
  std::string schema;  // "" stands for pg_catalog in the protocol; kept as sent
  std::string name;
  char replica_identity = 'd';  // 'd' default, 'n' nothing, 'f' full, 'i' index
  std::vector<RelationColumn> columns;
};

struct TypeMessage {
  uint32_t type_oid = 0;
  std::string schema;
  std::string name;
};

struct InsertMessage {
  uint32_t relation_id = 0;
  v1::Tuple new_tuple;
};

// old_kind: 0 when no old tuple was sent, 'K' old key, 'O' whole old row (REPLICA IDENTITY
// FULL).
struct UpdateMessage {
  uint32_t relation_id = 0;
  char old_kind = 0;
  v1::Tuple old_tuple;
  v1::Tuple new_tuple;
};

struct DeleteMessage {
  uint32_t relation_id = 0;
  char old_kind = 'K';  // 'K' or 'O'
  v1::Tuple old_tuple;
};

struct TruncateMessage {
  std::vector<uint32_t> relation_ids;
  bool cascade = false;
  bool restart_identity = false;
};

struct LogicalMessage {
  bool transactional = false;
  uint64_t lsn = 0;
  std::string prefix;
  std::string content;
};

using PgOutputMessage =
    std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage, TypeMessage,
                 InsertMessage, UpdateMessage, DeleteMessage, TruncateMessage, LogicalMessage>;

struct DecodeLimits {
  // Postgres allows at most 1664 columns in a tuple (MaxTupleAttributeNumber).
  int max_columns = 1664;
  // Truncate lists at most this many relations.
  int max_truncate_relations = 1 << 20;
  // A whole message; one value can be 1 GiB in Postgres, a row a few of them.
  size_t max_message_bytes = size_t{4} << 30;
};

// Decodes one pgoutput message (the payload of one XLogData). See the file comment for errors.
[[nodiscard]] absl::StatusOr<PgOutputMessage> DecodePgOutput(absl::string_view bytes,
                                                             const DecodeLimits& limits = {});

// "Begin", "Insert", ... for a message type byte; "unknown" otherwise.
absl::string_view PgOutputMessageName(char type);

}  // namespace ferry::pg
