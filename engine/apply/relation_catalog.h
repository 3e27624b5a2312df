// RelationCatalog: the table descriptions of inbound transactions, parsed once. Every record
// carries a description (v1::Relation) of each table its changes touch; a TPC-B transaction's
// four are 71% of its bytes, and parsing them again for every transaction was a third of the
// apply reader's CPU in a catch-up (bench/side_by_side/FINDINGS.md). The catalog parses a
// description the first time its exact bytes arrive and lends that message to every later
// transaction carrying the same bytes.
//
// Lending: a transaction parsed by the catalog holds pointers to the catalog's messages in its
// `relations` (protobuf's UnsafeArenaAddAllocated, its documented pattern for temporary
// ownership), and LentRelations keeps them alive and takes them back out before the transaction
// is destroyed. Until then the transaction may be read, copied (a copy owns its relations as
// usual) and moved together with its LentRelations, but never modified: clearing or changing its
// relations would change them for every other transaction. A LentRelations whose transaction
// does not hold its relations where it left them aborts: that is a bug that would otherwise free
// the catalog's messages.
//
// Moving a heap-allocated protobuf message swaps its contents, so a lent transaction may be moved
// (with its LentRelations), never copied into place by a move.
//
// The capture's side of the same sharing is engine/api/shared_relation.h (a description and the
// encoding the capture writes); the catalog keys descriptions by the bytes as received instead,
// which a peer's encoder need not have made the way protobuf would re-encode them.
//
// Thread safety: a catalog is not thread-safe (the scheduler's reader thread owns one). Lent
// messages are immutable and reference-counted, so transactions holding them may be read and
// destroyed on any thread, after the catalog too.
//
// Example:
//   RelationCatalog catalog;
//   v1::Transaction txn;
//   LentRelations lent;
//   if (!catalog.Parse(payload, &txn, &lent)) return absl::DataLossError("not a Transaction");
//   ...read txn...
//   lent.Return(&txn);  // or let the holder's destructor do it (InboundRecord, ApplyGroup)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/change.pb.h"

namespace ferry {

// The descriptions lent to one transaction: its first `size()` relations.
class LentRelations {
 public:
  LentRelations() = default;
  LentRelations(LentRelations&& other) noexcept;
  LentRelations& operator=(LentRelations&& other) = delete;
  LentRelations(const LentRelations&) = delete;
  LentRelations& operator=(const LentRelations&) = delete;
  // A LentRelations must be returned (or empty) when destroyed: its transaction would otherwise
  // free the catalog's messages.
  ~LentRelations();

  // Takes the lent descriptions out of `txn`, the transaction they were lent to; empty after.
  void Return(v1::Transaction* txn);

  bool empty() const { return relations_.empty(); }
  size_t size() const { return relations_.size(); }

 private:
  friend class RelationCatalog;
  std::vector<std::shared_ptr<const v1::Relation>> relations_;
};

class RelationCatalog {
 public:
  // At most this many descriptions, or this many bytes of them, are kept; past either the
  // catalog starts over (lent ones live on in their transactions).
  static constexpr size_t kMaxEntries = 4096;
  static constexpr size_t kMaxBytes = 16 << 20;

  // Parses `payload`, a serialized v1::Transaction, into `txn` (empty before), lending it its
  // relations; `lent` (empty before) takes them. False when protobuf would not parse it. A
  // payload whose framing the catalog does not follow is parsed by protobuf alone (nothing lent).
  [[nodiscard]] bool Parse(std::string_view payload, v1::Transaction* txn, LentRelations* lent);

  size_t entries() const { return by_bytes_.size(); }

 private:
  // The parsed description whose encoding is `bytes`, or null when it does not parse.
  std::shared_ptr<const v1::Relation> Find(std::string_view bytes);

  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Relation>> by_bytes_;
  size_t bytes_ = 0;
  // Parse's buffers, kept between calls: a record's other fields and its descriptions' bytes.
  std::string rest_;
  std::vector<std::string_view> encodings_;
};

}  // namespace ferry
