#include "connectors/postgres/source/transaction_assembler.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/common/ferry_messages.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "connectors/postgres/source/staged_copy.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "proto/pg_messages.pb.h"
#include "spdlog/spdlog.h"

namespace ferry::pg {

TransactionAssembler::TransactionAssembler(const AssemblerOptions& options,
                                           RelationCache* relations, CaptureTarget* target,
                                           Clock* clock)
    : options_(options),
      relations_(relations),
      target_(target),
      clock_(clock),
      unauthenticated_log_(clock, absl::Minutes(1)) {}

void TransactionAssembler::Reset() {
  in_transaction_ = false;
  dropping_ = false;
  from_ferry_ = false;
  ClearFragment();
  pending_.clear();
  pending_bytes_ = 0;
  pending_captured_ = 0;
  advance_to_ = 0;
  heartbeat_to_ = 0;
  // The server sends the transactions again; their copies stay until then.
  copies_in_transaction_.clear();
  copies_pending_.clear();
}

absl::Status TransactionAssembler::RequireTransaction(absl::string_view what) const {
  if (in_transaction_) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("pgoutput protocol violation: ", what, " message outside a transaction"));
}

absl::Status TransactionAssembler::Handle(PgOutputMessage message) {
  if (auto* m = std::get_if<BeginMessage>(&message)) return OnBegin(*m);
  if (auto* m = std::get_if<CommitMessage>(&message)) return OnCommit(*m);
  if (auto* m = std::get_if<RelationMessage>(&message)) return OnRelation(*m);
  if (auto* m = std::get_if<OriginMessage>(&message)) {
    FERRY_RETURN_IF_ERROR(RequireTransaction("Origin"));
    if (absl::StartsWith(m->name, options_.skip_origin_prefix)) {
      from_ferry_ = true;
      dropping_ = true;
    }
    return absl::OkStatus();
  }
  if (std::holds_alternative<TypeMessage>(message)) {
    // Type names come from format_type() when the Relation is described; nothing to keep.
    return absl::OkStatus();
  }
  if (auto* m = std::get_if<LogicalMessage>(&message)) {
    // Non-transactional messages are not part of any transaction; they are not captured.
    if (!m->transactional) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(RequireTransaction("Message"));
    if (dropping_) return absl::OkStatus();
    v1::Change c;
    c.set_op(v1::MESSAGE);
    if (absl::StartsWith(m->prefix, kFerryMessagePrefix)) {
      std::optional<std::string> payload;
      for (const std::string& key : message_keys_) {
        if ((payload = VerifyFerryMessage(key, m->content))) break;
      }
      if (payload) {
        c.set_message_authenticated(true);
        m->content = std::move(*payload);
      } else {
        ++stats_.unauthenticated_messages;
        if (std::optional<uint64_t> held = unauthenticated_log_.Due("message")) {
          spdlog::warn(
              "source transaction {}: a logical message with Ferry's prefix \"{}\" has no valid "
              "signature; it is carried but never replayed{}",
              begin_.xid, m->prefix, HeldBackNote(*held));
        }
      }
    }
    c.set_message_prefix(std::move(m->prefix));
    c.set_message_content(std::move(m->content));
    if (c.message_authenticated() && c.message_prefix() == kResnapshotMessagePrefix) {
      return AddResnapshot(std::move(c));
    }
    return AddChange(std::move(c), {});
  }
  if (auto* m = std::get_if<InsertMessage>(&message)) {
    FERRY_RETURN_IF_ERROR(RequireTransaction("Insert"));
    FERRY_ASSIGN_OR_RETURN(SharedRelationPtr r, RelationFor(m->relation_id, "Insert"));
    FERRY_RETURN_IF_ERROR(CheckTuple(r->relation(), m->new_tuple, "Insert"));
    if (dropping_) return absl::OkStatus();
    v1::Change c;
    c.set_op(v1::INSERT);
    c.set_relation_id(m->relation_id);
    *c.mutable_new_tuple() = std::move(m->new_tuple);
    return AddChange(std::move(c), {r});
  }
  if (auto* m = std::get_if<UpdateMessage>(&message)) {
    FERRY_RETURN_IF_ERROR(RequireTransaction("Update"));
    FERRY_ASSIGN_OR_RETURN(SharedRelationPtr r, RelationFor(m->relation_id, "Update"));
    FERRY_RETURN_IF_ERROR(CheckTuple(r->relation(), m->new_tuple, "Update"));
    if (m->old_kind != 0) {
      FERRY_RETURN_IF_ERROR(CheckTuple(r->relation(), m->old_tuple, "Update (old)"));
    }
    if (dropping_) return absl::OkStatus();
    v1::Change c;
    c.set_op(v1::UPDATE);
    c.set_relation_id(m->relation_id);
    if (m->old_kind != 0) {
      *c.mutable_old_tuple() = std::move(m->old_tuple);
      c.set_old_is_key_only(m->old_kind == 'K');
    }
    *c.mutable_new_tuple() = std::move(m->new_tuple);
    return AddChange(std::move(c), {r});
  }
  if (auto* m = std::get_if<DeleteMessage>(&message)) {
    FERRY_RETURN_IF_ERROR(RequireTransaction("Delete"));
    FERRY_ASSIGN_OR_RETURN(SharedRelationPtr r, RelationFor(m->relation_id, "Delete"));
    FERRY_RETURN_IF_ERROR(CheckTuple(r->relation(), m->old_tuple, "Delete"));
    if (dropping_) return absl::OkStatus();
    v1::Change c;
    c.set_op(v1::DELETE);
    c.set_relation_id(m->relation_id);
    *c.mutable_old_tuple() = std::move(m->old_tuple);
    c.set_old_is_key_only(m->old_kind == 'K');
    return AddChange(std::move(c), {r});
  }
  if (auto* m = std::get_if<TruncateMessage>(&message)) {
    FERRY_RETURN_IF_ERROR(RequireTransaction("Truncate"));
    std::vector<SharedRelationPtr> rs;
    for (uint32_t id : m->relation_ids) {
      FERRY_ASSIGN_OR_RETURN(SharedRelationPtr r, RelationFor(id, "Truncate"));
      rs.push_back(std::move(r));
    }
    if (dropping_) return absl::OkStatus();
    v1::Change c;
    c.set_op(v1::TRUNCATE);
    c.set_relation_id(m->relation_ids.front());
    for (uint32_t id : m->relation_ids) c.add_truncate_relation_ids(id);
    c.set_truncate_cascade(m->cascade);
    c.set_truncate_restart_identity(m->restart_identity);
    return AddChange(std::move(c), rs);
  }
  return absl::InternalError("unhandled pgoutput message kind");
}

absl::Status TransactionAssembler::OnBegin(const BeginMessage& m) {
  if (in_transaction_) {
    return absl::DataLossError(
        absl::StrCat("pgoutput protocol violation: Begin of the transaction committing at ",
                     FormatLsn(m.final_lsn), " inside the open transaction committing at ",
                     FormatLsn(begin_.final_lsn)));
  }
  in_transaction_ = true;
  begin_ = m;
  from_ferry_ = false;
  dropping_ = m.final_lsn < target_->CapturedPosition();
  if (dropping_) ++stats_.duplicates_skipped;
  copies_in_transaction_.clear();
  next_fragment_ = 0;
  StartFragment();
  return absl::OkStatus();
}

absl::Status TransactionAssembler::OnCommit(const CommitMessage& m) {
  FERRY_RETURN_IF_ERROR(RequireTransaction("Commit"));
  if (m.commit_lsn != begin_.final_lsn) {
    return absl::DataLossError(
        absl::StrCat("pgoutput protocol violation: Commit at ", FormatLsn(m.commit_lsn),
                     " does not match its Begin's final LSN ", FormatLsn(begin_.final_lsn)));
  }
  in_transaction_ = false;
  bool empty = next_fragment_ == 0 && fragment_.txn.changes_size() == 0;
  if (from_ferry_) ++stats_.origin_skipped;
  if (dropping_ && !from_ferry_) {
    ClearFragment();
    return absl::OkStatus();  // a duplicate: already captured
  }
  if (from_ferry_ || empty) {
    ClearFragment();
    advance_to_ = std::max(advance_to_, m.end_lsn);
    return absl::OkStatus();
  }
  ++stats_.transactions;
  // Before closing: closing may append at once, and the copies go only after that append.
  for (std::string& path : copies_in_transaction_) copies_pending_.push_back(std::move(path));
  copies_in_transaction_.clear();
  return CloseFragment(/*last=*/true, m.end_lsn);
}

absl::Status TransactionAssembler::OnRelation(const RelationMessage& m) {
  FERRY_ASSIGN_OR_RETURN(bool changed, relations_->Update(m, in_transaction_ ? begin_.xid : 0));
  if (changed) ++stats_.schema_changes;
  if (changed && in_transaction_ && !dropping_ && fragment_relations_.contains(m.relation_id)) {
    // The open fragment holds the old shape: close it so the new shape starts a new one.
    FERRY_RETURN_IF_ERROR(CloseFragment(/*last=*/false, 0));
  }
  return absl::OkStatus();
}

absl::StatusOr<SharedRelationPtr> TransactionAssembler::RelationFor(uint32_t relation_id,
                                                                    absl::string_view what) const {
  SharedRelationPtr r = relations_->Find(relation_id);
  if (r == nullptr) {
    return absl::DataLossError(absl::StrCat("pgoutput protocol violation: ", what,
                                            " for relation oid ", relation_id,
                                            " before any Relation message for it"));
  }
  return r;
}

absl::Status TransactionAssembler::CheckTuple(const v1::Relation& r, const v1::Tuple& t,
                                              absl::string_view what) const {
  if (t.values_size() == r.columns_size()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("pgoutput protocol violation: ", what, " of ", r.schema(),
                                          ".", r.name(), " has ", t.values_size(), " values for ",
                                          r.columns_size(), " columns"));
}

void TransactionAssembler::ClearFragment() {
  fragment_.txn.Clear();
  fragment_.relations.clear();
  fragment_bytes_ = 0;
  fragment_relations_.clear();
}

void TransactionAssembler::StartFragment() {
  ClearFragment();
  fragment_.txn.set_origin_region(options_.origin_region);
  fragment_.txn.set_source_position(begin_.final_lsn);
  fragment_.txn.set_commit_time_us(begin_.commit_time_us);
  fragment_.txn.set_source_xid(begin_.xid);
}

absl::Status TransactionAssembler::AddResnapshot(v1::Change message) {
  v1::PgResnapshotMessage m;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  std::string problem;
  std::unique_ptr<StagedCopyReader> copy;
  std::string path;
  if (!google::protobuf::util::JsonStringToMessage(message.message_content(), &m, parse).ok() ||
      m.v() != 1 || m.schema().empty() || m.name().empty()) {
    // Signed by our own function, so this cannot be; if it is, no table can be named: the
    // message is carried as a plain one and said loudly.
    spdlog::error(
        "capture: source transaction {}: an unreadable re-snapshot message is not replayed: {}",
        begin_.xid, message.message_content());
    message.set_message_authenticated(false);
    return AddChange(std::move(message), {});
  }
  if (!IsValidCopyId(m.id())) {
    problem = "the message names no valid copy id";
  } else if (options_.resnapshot_dir.empty()) {
    problem = "this capture has no staging directory for re-snapshots";
  } else {
    path = (std::filesystem::path(options_.resnapshot_dir) / m.id()).string();
    absl::StatusOr<std::unique_ptr<StagedCopyReader>> opened = StagedCopyReader::Open(path);
    if (opened.ok() && ((*opened)->relation().schema() != m.schema() ||
                        (*opened)->relation().name() != m.name())) {
      problem = absl::StrCat("the staged copy ", m.id(), " holds another table");
    } else if (opened.ok()) {
      copy = *std::move(opened);
    } else {
      problem = std::string(opened.status().message());
    }
  }
  if (copy == nullptr) {
    ++stats_.resnapshots_missing;
    spdlog::error(
        "capture: the re-snapshot of {}.{} (source transaction {}) has no usable copy ({}); the "
        "standby stops the table until `ferryctl resnapshot {}.{}` is run again",
        m.schema(), m.name(), begin_.xid, problem, m.schema(), m.name());
    m.set_copy_missing(true);
    m.set_missing_reason(problem);
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(m, &json, print);
    message.set_message_content(std::move(json));
    return AddChange(std::move(message), {});
  }
  FERRY_RETURN_IF_ERROR(AddChange(std::move(message), {}));
  const auto shared = std::make_shared<const SharedRelation>(copy->relation());
  const v1::Relation& relation = shared->relation();
  v1::Change truncate;
  truncate.set_op(v1::TRUNCATE);
  truncate.set_relation_id(relation.relation_id());
  truncate.add_truncate_relation_ids(relation.relation_id());
  FERRY_RETURN_IF_ERROR(AddChange(std::move(truncate), {shared}));
  while (true) {
    v1::Change insert;
    insert.set_op(v1::INSERT);
    insert.set_relation_id(relation.relation_id());
    absl::StatusOr<bool> more = copy->Next(insert.mutable_new_tuple());
    // Changed under us since it was checked: the session restarts and reads it again.
    if (!more.ok()) return absl::UnavailableError(more.status().message());
    if (!*more) break;
    FERRY_RETURN_IF_ERROR(AddChange(std::move(insert), {shared}));
  }
  ++stats_.resnapshots;
  copies_in_transaction_.push_back(std::move(path));
  KillPoint("capture.resnapshot_read");  // committed upstream, its rows read, none durable yet
  return absl::OkStatus();
}

absl::Status TransactionAssembler::AddChange(v1::Change change,
                                             const std::vector<SharedRelationPtr>& relations) {
  // Ferry's own tables (schema "ferry": apply's bookkeeping, the capture key) stay in their
  // region: FOR ALL TABLES publishes them, the capture drops their changes. The quarantine is
  // the exception: both regions keep it.
  if (!relations.empty() &&
      std::all_of(relations.begin(), relations.end(), [](const SharedRelationPtr& r) {
        return r->relation().schema() == kFerrySchema && r->relation().name() != kQuarantineTable;
      })) {
    return absl::OkStatus();
  }
  // A full fragment is closed when the next change arrives, so that the final fragment (closed
  // by Commit) is never empty.
  if (fragment_.txn.changes_size() > 0 &&
      (static_cast<size_t>(fragment_.txn.changes_size()) >= options_.max_fragment_changes ||
       fragment_bytes_ >= options_.max_fragment_bytes)) {
    FERRY_RETURN_IF_ERROR(CloseFragment(/*last=*/false, 0));
  }
  for (const SharedRelationPtr& r : relations) {
    if (fragment_relations_.insert(r->relation().relation_id()).second) {
      fragment_.relations.push_back(r);
      fragment_bytes_ += r->encoded_field().size();
    }
  }
  fragment_bytes_ += change.ByteSizeLong();
  *fragment_.txn.add_changes() = std::move(change);
  ++stats_.changes;
  return absl::OkStatus();
}

absl::Status TransactionAssembler::CloseFragment(bool last, uint64_t end_lsn) {
  fragment_.txn.set_fragment(next_fragment_++);
  fragment_.txn.set_last_fragment(last);
  if (last) {
    fragment_.txn.set_end_position(end_lsn);
    pending_captured_ = end_lsn;
  }
  pending_bytes_ += fragment_bytes_;
  pending_.push_back(std::move(fragment_));
  ++stats_.fragments;
  StartFragment();
  if (pending_bytes_ >= options_.max_batch_bytes) return Flush();
  return absl::OkStatus();
}

absl::Status TransactionAssembler::Flush() {
  if (!pending_.empty()) {
    std::vector<SharedRelationsFragment> batch;
    batch.swap(pending_);
    uint64_t captured = pending_captured_;
    pending_bytes_ = 0;
    pending_captured_ = 0;
    FERRY_RETURN_IF_ERROR(target_->AppendShared(std::move(batch), captured));
    // Durable: the staged copies of the complete transactions in it are of no more use.
    for (const std::string& path : copies_pending_) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      if (ec) spdlog::warn("capture: cannot delete the staged copy {}: {}", path, ec.message());
    }
    copies_pending_.clear();
  }
  if (advance_to_ > 0) {
    uint64_t to = advance_to_;
    advance_to_ = 0;
    if (to > target_->CapturedPosition()) FERRY_RETURN_IF_ERROR(target_->AdvanceTo(to));
  }
  if (!leftover_copies_.empty()) {
    const uint64_t captured = target_->CapturedPosition();
    std::erase_if(leftover_copies_, [&](const std::pair<std::string, uint64_t>& copy) {
      if (copy.second > captured) return false;
      std::error_code ec;
      if (std::filesystem::remove(copy.first, ec)) {
        spdlog::info("capture: deleted {}, the copy of a re-snapshot captured before a restart",
                     copy.first);
      }
      return true;
    });
  }
  return absl::OkStatus();
}

absl::Status TransactionAssembler::Heartbeat(uint64_t wal_end, bool urgent) {
  if (in_transaction_ || has_pending()) return absl::OkStatus();
  heartbeat_to_ = std::max(heartbeat_to_, wal_end);
  if (urgent) last_heartbeat_ = absl::InfinitePast();
  return Tick();
}

absl::Status TransactionAssembler::Tick() {
  if (heartbeat_to_ == 0) return absl::OkStatus();
  if (heartbeat_to_ <= target_->CapturedPosition()) {
    heartbeat_to_ = 0;
    return absl::OkStatus();
  }
  absl::Time now = clock_->Now();
  if (now - last_heartbeat_ < options_.heartbeat_interval) return absl::OkStatus();
  last_heartbeat_ = now;
  uint64_t to = heartbeat_to_;
  heartbeat_to_ = 0;
  return target_->AdvanceTo(to);
}

}  // namespace ferry::pg
