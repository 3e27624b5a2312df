// TransactionAssembler: turns the decoded pgoutput stream of one replication session into
// v1::Transaction fragments and hands them to the CaptureTarget, in batches.
//
// Contract, per pgoutput transaction (Begin ... Commit):
//   * Duplicates: a transaction whose commit LSN is below target.CapturedPosition() was
//     captured before (the server resends from the slot's confirmed_flush_lsn after a
//     reconnect) and is dropped whole.
//   * Loops: a transaction carrying an Origin message whose name starts with
//     options.skip_origin_prefix ("ferry_") was written by Ferry's apply; it is dropped and
//     the target is advanced to its end LSN instead.
//   * Empty transactions (nothing published) also only advance the target.
//   * Otherwise its changes go into fragments of at most max_fragment_changes changes and
//     about max_fragment_bytes bytes (a fragment that reached a limit is closed when the next
//     change arrives, so the last fragment always holds at least one change). Fragments are
//     numbered from 0; the last has last_fragment set and end_position filled (end_position is 0 on
//     the others: the commit record's end is unknown until Commit). Each fragment carries the
//     v1::Relation of every table its changes touch; a Relation message that changes the shape of a
//     table already in the open fragment closes that fragment first, so one fragment never holds
//     two shapes of one table.
//   * Positions: the captured position of a complete transaction is its end LSN (the
//     Commit message's end_lsn, just past the commit record), the position Postgres's own
//     subscribers confirm; confirming it means the server never resends that transaction.
//
// Re-snapshots (resnapshot.h): an authenticated "ferry.resnapshot" message is followed, in the
// same transaction, by a TRUNCATE of its table and one INSERT per row of the staged copy
// <resnapshot_dir>/<id>, with the copy's Relation (fragmented like any change). The copy is
// deleted once the transaction's last fragment is durably appended. When the copy is missing or
// corrupt, the message is kept with its payload rewritten (copy_missing, missing_reason) so that
// apply stops the table and says to run the re-snapshot again; capture goes on. A crash between
// the durable append and the deletion leaves the copy: the session finds it at its start
// (DeleteCopiesOnceCaptured) and Flush() deletes it once the captured position passes a WAL
// position known to follow its transaction's commit.
//
// Batching: closed fragments wait in memory until Flush() (called by the replication loop
// when the socket has nothing more to read, or by Handle() itself once max_batch_bytes are
// pending), so that many small transactions share one durable Append. Memory is bounded by
// about max_batch_bytes + max_fragment_bytes whatever the transaction size.
//
// Errors: a stream that breaks the protocol (a change outside Begin/Commit, a change for a
// relation never announced, a tuple whose column count does not match its Relation, a Commit
// whose LSN differs from its Begin's) gives kDataLoss and nothing of the open transaction
// beyond already appended non-final fragments (which a reader discards, see change.proto) is
// captured. Errors of the target are returned as they are.
//
// Thread safety: not thread-safe; owned by the capture thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "connectors/postgres/source/pgoutput_decoder.h"
#include "connectors/postgres/source/relation_cache.h"
#include "engine/api/shared_relation.h"
#include "engine/api/source.h"
#include "engine/base/clock.h"
#include "engine/base/log_limiter.h"

namespace ferry::pg {

struct AssemblerOptions {
  // Stamped into Transaction.origin_region.
  std::string origin_region;
  // Fragment limits (both must be >= 1).
  size_t max_fragment_changes = 10000;
  size_t max_fragment_bytes = 8 << 20;
  // Pending output that forces an Append without waiting for Flush().
  size_t max_batch_bytes = 8 << 20;
  // Transactions from a replication origin with this prefix are not captured.
  std::string skip_origin_prefix = "ferry_";
  // Where re-snapshots stage their copies (resnapshot.h); see "Re-snapshots" above.
  std::string resnapshot_dir;
  // Heartbeat(): at most one AdvanceTo per interval unless the server asks for a reply.
  absl::Duration heartbeat_interval = absl::Seconds(1);
};

struct AssemblerStats {
  uint64_t transactions = 0;        // captured
  uint64_t duplicates_skipped = 0;  // already captured, sent again
  uint64_t origin_skipped = 0;      // written by Ferry (loop prevention)
  uint64_t fragments = 0;
  uint64_t changes = 0;
  uint64_t schema_changes = 0;            // Relation messages that changed a known shape
  uint64_t unauthenticated_messages = 0;  // "ferry." messages whose signature was wrong
  uint64_t resnapshots = 0;               // re-snapshots captured with their rows
  uint64_t resnapshots_missing = 0;       // re-snapshots whose staged copy was missing
};

class TransactionAssembler {
 public:
  // `relations`, `target` and `clock` must outlive the assembler.
  TransactionAssembler(const AssemblerOptions& options, RelationCache* relations,
                       CaptureTarget* target, Clock* clock);

  // The keys Ferry's own messages ("ferry." prefixes) are signed with (ddl_capture.h). A message
  // with such a prefix whose signature is right is captured with message_authenticated set and
  // its payload as content; any other (forged, or signed with another key) is captured as a
  // plain message, which apply never replays, and counted in stats().unauthenticated_messages.
  // Several keys: the current one and those it replaced (messages signed before a new key was
  // made may still be in the slot).
  void SetMessageKeys(std::vector<std::string> keys) { message_keys_ = std::move(keys); }

  // Staged copies (path, position) whose re-snapshot transaction committed before `position`:
  // each is deleted by a Flush() once target.CapturedPosition() >= position.
  void DeleteCopiesOnceCaptured(std::vector<std::pair<std::string, uint64_t>> copies) {
    leftover_copies_ = std::move(copies);
  }

  // Consumes one decoded message. See the class comment for errors.
  [[nodiscard]] absl::Status Handle(PgOutputMessage message);

  // Appends every pending fragment, then advances the target past filtered or empty
  // transactions. No-op when nothing is pending.
  [[nodiscard]] absl::Status Flush();

  // The server's WAL end from a keepalive. Everything committed before it was sent before the
  // keepalive, so when no transaction is open and nothing is pending (call Flush() first) the
  // target may advance to it: at once when `urgent` (the server asked for a reply) or when
  // heartbeat_interval passed since the last advance, else later through Tick().
  [[nodiscard]] absl::Status Heartbeat(uint64_t wal_end, bool urgent);
  // Applies a heartbeat deferred by the rate limit once its time has come. Call when idle.
  [[nodiscard]] absl::Status Tick();

  // Forgets the open transaction and anything not yet appended (after the connection broke;
  // the server resends from the confirmed position).
  void Reset();

  bool in_transaction() const { return in_transaction_; }
  bool has_pending() const { return !pending_.empty() || advance_to_ > 0; }
  const AssemblerStats& stats() const { return stats_; }

 private:
  [[nodiscard]] absl::Status OnBegin(const BeginMessage& m);
  [[nodiscard]] absl::Status OnCommit(const CommitMessage& m);
  [[nodiscard]] absl::Status OnRelation(const RelationMessage& m);
  [[nodiscard]] absl::Status RequireTransaction(absl::string_view what) const;
  // The relation for a change, or kDataLoss when unknown / the tuple does not fit it.
  [[nodiscard]] absl::StatusOr<SharedRelationPtr> RelationFor(uint32_t relation_id,
                                                              absl::string_view what) const;
  [[nodiscard]] absl::Status CheckTuple(const v1::Relation& r, const v1::Tuple& t,
                                        absl::string_view what) const;
  // The message and, when its copy is sound, the TRUNCATE and rows after it (see above).
  [[nodiscard]] absl::Status AddResnapshot(v1::Change message);
  // Adds a change and the relations it refers to (shared with the other fragments, not copied).
  [[nodiscard]] absl::Status AddChange(v1::Change change,
                                       const std::vector<SharedRelationPtr>& relations);
  void ClearFragment();
  void StartFragment();
  [[nodiscard]] absl::Status CloseFragment(bool last, uint64_t end_lsn);

  // Constant after construction.
  const AssemblerOptions options_;
  RelationCache* const relations_;
  CaptureTarget* const target_;
  Clock* const clock_;
  std::vector<std::string> message_keys_;
  LogLimiter unauthenticated_log_;

  // The open transaction.
  bool in_transaction_ = false;
  bool dropping_ = false;  // duplicate or Ferry origin: its changes are not kept
  bool from_ferry_ = false;
  BeginMessage begin_;
  uint32_t next_fragment_ = 0;
  SharedRelationsFragment fragment_;
  size_t fragment_bytes_ = 0;
  absl::flat_hash_set<uint32_t> fragment_relations_;  // the ids of fragment_.relations

  // Closed fragments not yet appended.
  std::vector<SharedRelationsFragment> pending_;
  size_t pending_bytes_ = 0;
  uint64_t pending_captured_ = 0;  // end LSN of the last complete transaction in pending_
  uint64_t advance_to_ = 0;        // end LSN of a later filtered/empty transaction, or 0
  absl::Time last_heartbeat_ = absl::InfinitePast();
  uint64_t heartbeat_to_ = 0;  // a keepalive position not yet advanced to
  // Staged copies used by the open transaction, and by closed ones not yet durably appended:
  // deleted after the Append that makes them durable.
  std::vector<std::string> copies_in_transaction_;
  std::vector<std::string> copies_pending_;
  std::vector<std::pair<std::string, uint64_t>> leftover_copies_;

  AssemblerStats stats_;
};

}  // namespace ferry::pg
