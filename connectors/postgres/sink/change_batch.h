// ChangeBatch: the net effect of a run of row changes on tables whose rows are independent of
// each other, turned into a few set-based statements (one per table and kind) instead of one
// statement per change. The fast path of the Postgres sink feeds it every INSERT, UPDATE and
// DELETE of a group; the group is one target transaction, so only its net effect is ever
// visible and the order of changes to DIFFERENT rows is not observable, as long as the table
// has no unique key besides its primary key (= the replica identity), no triggers that fire on
// apply, and no foreign-key checks (session_replication_role = replica). The session decides
// that per table; this class only merges changes of the SAME row:
//
//   INSERT  then UPDATE  -> INSERT of the merged row
//   UPDATE  then UPDATE  -> UPDATE of the merged columns (latest value of each; a column left
//                           as unchanged TOAST by every update is not set)
//   UPDATE  then DELETE  -> DELETE
//   anything else (INSERT then DELETE, DELETE then INSERT, ...) -> kFlushFirst: the caller
//   emits what is batched and adds the change again to an empty batch, so order is kept.
//
// Every statement carries the number of rows it must affect; a shortfall (a missing row, an
// existing key) is a conflict that the caller resolves by re-applying the group change by
// change ("careful" mode), where each conflict is recorded exactly.
//
// The batch holds pointers into the relations and changes it is given: they must outlive it
// (until Take() or Clear()).
//
// Example:
//   ChangeBatch batch;
//   if (batch.Add(rel, change) == ChangeBatch::kFlushFirst) { emit(batch.Take()); ... }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/change.pb.h"

namespace ferry::pg_sink {

class ChangeBatch {
 public:
  enum AddResult {
    kAdded,         // merged or appended
    kFlushFirst,    // conflicts with a batched change of the same row or shape: Take() first
    kNotBatchable,  // this change needs its own statement (key change, no usable key, TOAST key)
  };
  enum class Kind { kInsert, kUpdate, kDelete };
  // Inserts of one table go by COPY from this many rows on; fewer go by an INSERT over arrays.
  static constexpr size_t kCopyRows = 64;
  // One statement to run, with the rows it must affect. Its SQL needs the target's column
  // types (Sql()); everything costly (the array literals) is computed by Take().
  struct Statement {
    const v1::Relation* relation = nullptr;
    Kind kind = Kind::kInsert;
    std::vector<int> key_columns;
    std::vector<int> set_columns;     // UPDATE only
    std::vector<std::string> params;  // array literals, one per parameter (not for a COPY)
    bool copy = false;                // INSERT by COPY (kCopyRows rows or more)
    std::string copy_data;            // then: the rows in COPY text format
    // Or, for a COPY change passed as it is: its rows (the change outlives the statement).
    const std::string* copy_rows = nullptr;
    int64_t expect_rows = 0;

    // `types`: the target's column types (format_type), parallel to the relation's columns.
    // For an INSERT by COPY: the COPY ... FROM STDIN command.
    std::string Sql(const std::vector<std::string>& types) const;
    const char* what() const;  // "INSERT", "UPDATE", "DELETE" (for messages)
  };

  // `relation` describes the change's table. Values must already be validated (column count,
  // no NUL). INSERTs into a table without a replica identity key (or with REPLICA IDENTITY
  // FULL) are appended as they come.
  // `fresh`: an INSERT of a row that no other change of this batch touches (a snapshot row);
  // it is appended without indexing its key, and a later keyed change of the same table gets
  // kFlushFirst.
  AddResult Add(const v1::Relation& relation, const v1::Change& change, bool fresh = false);

  // The statements for everything added, deletes before updates before inserts per table
  // (rows are distinct, so any order is equivalent); empties the batch.
  std::vector<Statement> Take();
  void Clear();

  bool empty() const { return rows_ == 0; }
  size_t rows() const { return rows_; }
  // Approximate bytes of the values held (for flushing by size).
  size_t bytes() const { return bytes_; }

 private:
  using Op = Kind;
  struct Row {
    Op op;
    // Per column: the value to write (nullptr: not set, i.e. unchanged TOAST). For a DELETE
    // only the key columns are set.
    std::vector<const v1::Value*> values;
  };
  struct TableBatch {
    const v1::Relation* relation = nullptr;
    std::vector<int> key_columns;                     // empty: keyless table (inserts only)
    absl::flat_hash_map<std::string, size_t> by_key;  // encoded key -> index into rows
    std::vector<Row> rows;
    bool has_fresh = false;  // rows added unindexed (`fresh`)
  };

  std::vector<TableBatch> tables_;
  absl::flat_hash_map<std::string, size_t> table_index_;  // qualified name -> index
  size_t rows_ = 0;
  size_t bytes_ = 0;
};

}  // namespace ferry::pg_sink
