// Catalog reads of the Postgres source, over a normal (non-replication) connection:
//   * PgRelationCatalog: the RelationCatalog of relation_cache.h (format_type names cached per
//     (oid, typmod), primary keys, NOT NULL columns). Reconnects after a broken connection.
//   * DescribeTable: a table's shape as pgoutput would announce it (a RelationMessage built
//     from pg_attribute: no dropped or generated columns, key flags from the replica
//     identity), so snapshot rows and streamed rows carry identical Relation records.
//   * ListPublishedTables: the tables a publication publishes (pg_publication_tables).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/common/type_names.h"
#include "connectors/postgres/source/relation_cache.h"

namespace ferry::pg {

class PgRelationCatalog final : public RelationCatalog {
 public:
  explicit PgRelationCatalog(std::string dsn) : dsn_(std::move(dsn)) {}
  // Reads through `borrowed` (which must outlive it), never reconnecting: e.g. a connection on
  // an exported snapshot, so that names and NOT NULL columns are those of the snapshot.
  explicit PgRelationCatalog(PgConnection* borrowed) : borrowed_(borrowed) {}

  [[nodiscard]] absl::StatusOr<std::vector<std::string>> TypeNames(
      const std::vector<TypeRef>& types) override;
  [[nodiscard]] absl::StatusOr<TableDetails> Table(uint32_t relation_id) override;
  // Polls pg_current_snapshot() (1 ms, doubling to 20 ms) until `xid` is visible; after 30 s
  // kUnavailable (the session restarts and the message comes again).
  [[nodiscard]] absl::Status AwaitVisible(uint32_t xid) override;

  // The connection (connected on first use, replaced when broken).
  [[nodiscard]] absl::StatusOr<PgConnection*> Connection();

 private:
  const std::string dsn_;
  PgConnection* const borrowed_ = nullptr;
  std::unique_ptr<PgConnection> conn_;
  TypeNameCache types_;
};

// Whether the transaction with 32-bit id `xid`, known to have committed recently, is visible
// in `snapshot`, the text of pg_current_snapshot() ("xmin:xmax:xip,xip,..."). The full 64-bit
// id is taken as the one nearest to xmax. An unreadable snapshot text is kInternal.
[[nodiscard]] absl::StatusOr<bool> VisibleInSnapshot(uint32_t xid, absl::string_view snapshot);

struct PublishedTable {
  uint32_t relation_id = 0;
  std::string schema;
  std::string name;
  bool partitioned = false;     // relkind 'p': read without ONLY
  int64_t estimated_rows = -1;  // pg_class.reltuples; -1 when never analyzed
};

// Largest tables first (so parallel copies finish together).
[[nodiscard]] absl::StatusOr<std::vector<PublishedTable>> ListPublishedTables(
    PgConnection& conn, const std::string& publication);

// kFailedPrecondition when the table no longer exists.
[[nodiscard]] absl::StatusOr<RelationMessage> DescribeTable(PgConnection& conn,
                                                            uint32_t relation_id);

}  // namespace ferry::pg
