#include "connectors/postgres/source/postgres_source.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/source/capture_privileges.h"
#include "connectors/postgres/source/catalog.h"
#include "connectors/postgres/source/commit_delay.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "connectors/postgres/source/pgoutput_decoder.h"
#include "connectors/postgres/source/relation_cache.h"
#include "connectors/postgres/source/replication_connection.h"
#include "connectors/postgres/source/resnapshot.h"
#include "connectors/postgres/source/snapshot.h"
#include "connectors/postgres/source/transaction_assembler.h"
#include "connectors/postgres/source/walsender_messages.h"
#include "engine/base/backoff.h"
#include "engine/base/log_limiter.h"
#include "engine/base/status_macros.h"

namespace ferry::pg {
namespace {

constexpr absl::Duration kMaxStatusSilence = absl::Seconds(10);

bool ValidSlotName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool Retryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

struct SlotInfo {
  std::string plugin;
  std::string database;
  uint64_t confirmed_flush = 0;
  std::string wal_status;  // "lost": invalidated, it can never stream again
};

// The slot identity stored in the source state: "v1 system_id=<id> consistent_point=<lsn>".
struct SlotIdentity {
  std::string system_id;
  uint64_t consistent_point = 0;

  std::string Encode() const {
    return absl::StrCat("v1 system_id=", system_id,
                        " consistent_point=", FormatLsn(consistent_point));
  }
  static absl::StatusOr<SlotIdentity> Decode(const std::string& text) {
    SlotIdentity id;
    std::vector<std::string> parts = absl::StrSplit(text, ' ');
    if (parts.size() != 3 || parts[0] != "v1" || !absl::StartsWith(parts[1], "system_id=") ||
        !absl::StartsWith(parts[2], "consistent_point=")) {
      return absl::DataLossError(absl::StrCat("unreadable stored slot identity \"", text, "\""));
    }
    id.system_id = parts[1].substr(10);
    FERRY_ASSIGN_OR_RETURN(id.consistent_point, ParseLsn(parts[2].substr(17)));
    return id;
  }
};

// Creates the publication when it is missing (FOR ALL TABLES needs a superuser).
absl::Status EnsurePublication(PgConnection& conn, const PostgresSourceOptions& options_) {
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.ExecParams("SELECT 1 FROM pg_publication WHERE "
                                                     "pubname = $1",
                                                     {options_.publication}));
  if (r.rows() > 0) return absl::OkStatus();
  std::string what = "ALL TABLES";
  if (!options_.tables.empty()) {
    std::vector<std::string> names;
    for (const std::string& t : options_.tables) {
      size_t dot = t.find('.');
      names.push_back(dot == std::string::npos
                          ? QuoteIdentifier(t)
                          : QualifiedName(t.substr(0, dot), t.substr(dot + 1)));
    }
    what = absl::StrCat("TABLE ", absl::StrJoin(names, ", "));
  }
  auto created =
      conn.Exec(absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(options_.publication), " FOR ",
                             what, " WITH (publish_via_partition_root = true)"));
  // Another process may have created it at the same moment (42710 duplicate_object).
  if (!created.ok() && !HasSqlState(created.status(), "42710")) {
    return Annotate(created.status(), "creating the publication");
  }
  return absl::OkStatus();
}

}  // namespace

// One replication session: connect, check or create the slot (and snapshot), stream until
// stopped or an error. Lives on the capture thread.
class PostgresSource::Session {
 public:
  Session(PostgresSource& source, CaptureTarget& target, const StopSignal& stop)
      : source_(source),
        options_(source.options_),
        target_(target),
        stop_(stop),
        catalog_(options_.dsn),
        relations_(&catalog_),
        assembler_(AssemblerOptionsFor(options_), &relations_, &target, source.clock_) {}

  // Sets *streamed when the session reached the streaming phase.
  absl::Status Run(bool* streamed) {
    FERRY_ASSIGN_OR_RETURN(PgConnection * conn, catalog_.Connection());
    FERRY_RETURN_IF_ERROR(CheckPrivileges(*conn));
    FERRY_ASSIGN_OR_RETURN(repl_, ReplicationConnection::Connect(options_.dsn));
    FERRY_ASSIGN_OR_RETURN(SystemIdentity system, repl_->IdentifySystem());
    FERRY_RETURN_IF_ERROR(EnsurePublication(*conn, options_));
    FERRY_RETURN_IF_ERROR(EnsureDdlCapture(*conn));
    FERRY_ASSIGN_OR_RETURN(std::string message_key, LoadMessageKey(*conn));
    FERRY_ASSIGN_OR_RETURN(std::vector<std::string> keys, KnownMessageKeys(message_key));
    assembler_.SetMessageKeys(std::move(keys));
    FERRY_ASSIGN_OR_RETURN(uint64_t start, PrepareSlot(system));
    FERRY_ASSIGN_OR_RETURN(auto leftovers, LeftoverCopies(*conn, options_.resnapshot_dir));
    assembler_.DeleteCopiesOnceCaptured(std::move(leftovers));
    if (absl::Status started = repl_->StartReplication(options_.slot, start, options_.publication);
        !started.ok()) {
      // The slot went between the check above and here (42704: dropped; 55000 naming the slot:
      // invalidated): the same stop and recovery as when the check finds it so. Other errors
      // (a server in recovery, wal_level) keep their own message.
      const bool slot_gone =
          HasSqlState(started, "42704") ||
          (HasSqlState(started, "55000") && absl::StrContains(started.message(), "slot"));
      if (!slot_gone) return started;
      return SlotError(absl::StrCat("streaming from it failed (", started.message(), ")"));
    }
    {
      absl::MutexLock lock(&source_.mu_);
      source_.health_.connected = true;
      source_.health_.last_error.clear();
    }
    *streamed = true;
    received_ = start;
    return Stream();
  }

 private:
  static AssemblerOptions AssemblerOptionsFor(const PostgresSourceOptions& o) {
    AssemblerOptions a;
    a.origin_region = o.origin_region;
    a.max_fragment_changes = o.max_fragment_changes;
    a.max_fragment_bytes = o.max_fragment_bytes;
    a.max_batch_bytes = o.max_fragment_bytes;
    a.skip_origin_prefix = o.skip_origin_prefix;
    a.resnapshot_dir = o.resnapshot_dir;
    return a;
  }

  // Before the replication connection: a missing grant is named, not libpq's walsender refusal.
  absl::Status CheckPrivileges(PgConnection& conn) {
    FERRY_ASSIGN_OR_RETURN(std::string snapshot_state,
                           target_.GetSourceState(source_.StateKey("snapshot")));
    CaptureNeeds needs;
    needs.publication = options_.publication;
    needs.tables = options_.tables;
    needs.snapshot =
        options_.snapshot && (absl::StartsWith(snapshot_state, "in_progress") ||
                              (snapshot_state.empty() && target_.CapturedPosition() == 0));
    return CheckCapturePrivileges(conn, needs);
  }

  // The current signing key and the ones it replaced, newest first (source state "message_keys":
  // hex keys, comma separated, at most kMaxKeys): a key made anew (its row deleted) must not
  // leave messages signed with the old one, still in the slot, unreplayed.
  absl::StatusOr<std::vector<std::string>> KnownMessageKeys(const std::string& current) {
    constexpr size_t kMaxKeys = 8;
    FERRY_ASSIGN_OR_RETURN(std::string stored,
                           target_.GetSourceState(source_.StateKey("message_keys")));
    std::vector<std::string> keys = {current};
    for (absl::string_view hex : absl::StrSplit(stored, ',', absl::SkipEmpty())) {
      std::string key = absl::HexStringToBytes(hex);
      if (key != current && keys.size() < kMaxKeys) keys.push_back(std::move(key));
    }
    std::vector<std::string> hex;
    for (const std::string& k : keys) hex.push_back(absl::BytesToHexString(k));
    const std::string joined = absl::StrJoin(hex, ",");
    if (joined != stored) {
      FERRY_RETURN_IF_ERROR(target_.PutSourceState(source_.StateKey("message_keys"), joined));
    }
    return keys;
  }

  absl::StatusOr<std::optional<SlotInfo>> LookupSlot(PgConnection& conn) {
    FERRY_ASSIGN_OR_RETURN(PgResult r,
                           conn.ExecParams("SELECT plugin, database, confirmed_flush_lsn, "
                                           "wal_status FROM pg_replication_slots "
                                           "WHERE slot_name = $1",
                                           {options_.slot}));
    if (r.rows() == 0) return std::optional<SlotInfo>();
    SlotInfo info;
    info.plugin = std::string(r.Get(0, 0));
    info.database = std::string(r.Get(0, 1));
    if (!r.IsNull(0, 3)) info.wal_status = std::string(r.Get(0, 3));
    if (!r.IsNull(0, 2)) {
      FERRY_ASSIGN_OR_RETURN(info.confirmed_flush, ParseLsn(r.Get(0, 2)));
    }
    return std::optional<SlotInfo>(std::move(info));
  }

  absl::Status DropSlot(PgConnection& conn) {
    return conn.ExecParams("SELECT pg_drop_replication_slot($1)", {options_.slot}).status();
  }

  absl::Status SlotError(const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("replication slot \"", options_.slot, "\": ", why,
                     "; capture stopped so that no change is skipped silently. Recovery: "
                     "connectors/postgres/source/README.md"));
  }

  // Checks the slot against what was captured, creating it (and running the snapshot) when
  // this is the first start. Returns the position to stream from.
  absl::StatusOr<uint64_t> PrepareSlot(const SystemIdentity& system) {
    FERRY_ASSIGN_OR_RETURN(PgConnection * conn, catalog_.Connection());
    FERRY_ASSIGN_OR_RETURN(std::optional<SlotInfo> slot, LookupSlot(*conn));
    FERRY_ASSIGN_OR_RETURN(std::string identity_text,
                           target_.GetSourceState(source_.StateKey("identity")));
    FERRY_ASSIGN_OR_RETURN(std::string snapshot_state,
                           target_.GetSourceState(source_.StateKey("snapshot")));
    const uint64_t captured = target_.CapturedPosition();
    const bool snapshot_unfinished = absl::StartsWith(snapshot_state, "in_progress");
    std::optional<SlotIdentity> identity;
    if (!identity_text.empty()) {
      FERRY_ASSIGN_OR_RETURN(identity, SlotIdentity::Decode(identity_text));
      if (identity->system_id != system.system_id) {
        return SlotError(absl::StrCat("the database cluster changed (system identifier ",
                                      system.system_id, ", captured from ", identity->system_id,
                                      ")"));
      }
    }

    bool create = false;
    if (!slot.has_value()) {
      if (snapshot_unfinished || (captured == 0 && !identity.has_value())) {
        create = true;
      } else {
        return SlotError(
            absl::StrCat("the slot no longer exists (captured up to ", FormatLsn(captured), ")"));
      }
    } else {
      if (slot->plugin != "pgoutput") {
        return SlotError(absl::StrCat("uses plugin \"", slot->plugin, "\", not pgoutput"));
      }
      if (slot->database != system.database) {
        return SlotError(absl::StrCat("belongs to database \"", slot->database, "\", not \"",
                                      system.database, "\""));
      }
      if (snapshot_unfinished) {
        // A snapshot was interrupted: its exported snapshot died with the old connection.
        // Start again from a fresh slot; the redone tables begin with a TRUNCATE.
        FERRY_RETURN_IF_ERROR(DropSlot(*conn));
        create = true;
      } else if (!identity.has_value() && captured == 0 && options_.snapshot) {
        // A slot someone else made: its snapshot cannot be had; make our own.
        FERRY_RETURN_IF_ERROR(DropSlot(*conn));
        create = true;
      } else if (slot->wal_status == "lost") {
        return SlotError(absl::StrCat(
            "it was invalidated: Postgres removed WAL it still needed (max_slot_wal_keep_size), "
            "so changes it held are gone",
            captured == 0 ? "" : absl::StrCat(" (captured up to ", FormatLsn(captured), ")")));
      } else if (!identity.has_value() && captured == 0) {
        // Adopt a slot created beforehand (no snapshot wanted): capture from its position.
        FERRY_RETURN_IF_ERROR(
            target_.PutSourceState(source_.StateKey("identity"),
                                   SlotIdentity{system.system_id, slot->confirmed_flush}.Encode()));
        if (slot->confirmed_flush > 0)
          FERRY_RETURN_IF_ERROR(target_.AdvanceTo(slot->confirmed_flush));
        return target_.CapturedPosition();
      } else if (slot->confirmed_flush > captured) {
        return SlotError(absl::StrCat(
            "its confirmed position ", FormatLsn(slot->confirmed_flush),
            " is ahead of what was captured (", FormatLsn(captured),
            "): it was recreated or advanced by someone else, and the changes in between "
            "are gone"));
      } else if (!identity.has_value()) {
        FERRY_RETURN_IF_ERROR(
            target_.PutSourceState(source_.StateKey("identity"),
                                   SlotIdentity{system.system_id, slot->confirmed_flush}.Encode()));
      }
    }
    if (!create) return captured;

    // Order matters for a crash at any step: with a snapshot, "in_progress" is durable before
    // the slot exists (a restart then redoes everything from a new slot); without one, the
    // position is durable before the identity (a restart then adopts the slot as it is).
    if (options_.snapshot) {
      FERRY_RETURN_IF_ERROR(target_.PutSourceState(source_.StateKey("snapshot"), "in_progress"));
    }
    FERRY_ASSIGN_OR_RETURN(CreatedSlot created,
                           repl_->CreateSlot(options_.slot, options_.snapshot));
    const std::string identity_value =
        SlotIdentity{system.system_id, created.consistent_point}.Encode();
    if (options_.snapshot) {
      FERRY_RETURN_IF_ERROR(target_.PutSourceState(source_.StateKey("identity"), identity_value));
      FERRY_RETURN_IF_ERROR(RunSnapshot(created));
      FERRY_RETURN_IF_ERROR(target_.AdvanceTo(created.consistent_point));
      FERRY_RETURN_IF_ERROR(
          target_.PutSourceState(source_.StateKey("snapshot"),
                                 absl::StrCat("done ", FormatLsn(created.consistent_point))));
    } else {
      FERRY_RETURN_IF_ERROR(target_.AdvanceTo(created.consistent_point));
      FERRY_RETURN_IF_ERROR(target_.PutSourceState(source_.StateKey("identity"), identity_value));
    }
    return created.consistent_point;
  }

  absl::Status RunSnapshot(const CreatedSlot& created) {
    FERRY_RETURN_IF_ERROR(
        target_.PutSourceState(source_.StateKey("snapshot"),
                               absl::StrCat("in_progress ", FormatLsn(created.consistent_point))));
    {
      absl::MutexLock lock(&source_.mu_);
      source_.health_.snapshot_in_progress = true;
    }
    SnapshotOptions so;
    so.dsn = options_.dsn;
    so.snapshot_name = created.snapshot_name;
    so.consistent_point = created.consistent_point;
    // The tables and their shapes as of the snapshot: a table created after it (its CREATE and
    // rows follow in the stream) must not be copied too, or the replayed CREATE finds it.
    std::vector<SnapshotTable> tables;
    {
      FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, OpenSnapshotConnection(so));
      FERRY_ASSIGN_OR_RETURN(std::vector<PublishedTable> published,
                             ListPublishedTables(*conn, options_.publication));
      PgRelationCatalog as_of_snapshot(conn.get());  // type names, NOT NULL columns too
      for (PublishedTable& p : published) {
        FERRY_ASSIGN_OR_RETURN(RelationMessage m, DescribeTable(*conn, p.relation_id));
        FERRY_ASSIGN_OR_RETURN(v1::Relation r, BuildRelation(m, as_of_snapshot));
        tables.push_back({std::move(p), std::move(r)});
      }
    }
    {
      absl::MutexLock lock(&source_.mu_);
      source_.health_.snapshot_tables.clear();
      for (const SnapshotTable& t : tables) {
        source_.health_.snapshot_tables.push_back(
            {.table = absl::StrCat(t.table.schema, ".", t.table.name),
             .rows_estimated = t.table.estimated_rows});
      }
    }
    so.origin_region = options_.origin_region;
    so.snapshot_time_us = absl::ToUnixMicros(source_.clock_->Now());
    so.max_chunk_rows = options_.max_fragment_changes;
    so.max_chunk_bytes = options_.max_fragment_bytes;
    so.parallelism = options_.snapshot_parallelism;
    so.state_prefix = source_.StateKey("");
    so.progress = [this](const PublishedTable& table, uint64_t rows, bool done) {
      const std::string name = absl::StrCat(table.schema, ".", table.name);
      const absl::Time now = source_.clock_->Now();
      absl::MutexLock lock(&source_.mu_);
      for (TableCopyProgress& p : source_.health_.snapshot_tables) {
        if (p.table != name) continue;
        if (p.started == absl::InfinitePast()) p.started = now;
        p.rows_copied += rows;
        p.done = p.done || done;
      }
    };
    absl::Status s = CopyTables(so, tables, target_, stop_);
    {
      absl::MutexLock lock(&source_.mu_);
      source_.health_.snapshot_in_progress = false;
    }
    return Annotate(s, "initial snapshot");
  }

  absl::Status Stream() {
    while (!stop_.stopped()) {
      FERRY_ASSIGN_OR_RETURN(std::optional<absl::string_view> data,
                             repl_->Receive(absl::ZeroDuration()));
      if (!data.has_value() && assembler_.has_pending()) {
        // Drained, but under load and moments after the previous append: wait a little for
        // more transactions so that they share one durable append (and, downstream, one frame,
        // one receiving append and one apply group); see commit_delay.h. It sleeps rather than
        // waking for every message that arrives meanwhile (the walsender sends a transaction as
        // several), then reads them all.
        const absl::Time now = source_.clock_->Now();
        const absl::Time due = commit_delay_.AppendAt(now, assembler_.stats().transactions);
        if (now < due) {
          stop_.SleepUntil(*source_.clock_, due);  // at most the delay; a stop ends it
          continue;
        }
      }
      if (!data.has_value()) {
        // Drained what the socket had: make it durable before waiting (group commit).
        if (assembler_.has_pending()) commit_delay_.Appended(source_.clock_->Now());
        FERRY_RETURN_IF_ERROR(assembler_.Flush());
        FERRY_RETURN_IF_ERROR(assembler_.Tick());
        FERRY_RETURN_IF_ERROR(MaybeSendStatus(false));
        MaybeMeasureRetained();
        MaybeEmitSequences();
        FERRY_ASSIGN_OR_RETURN(data, repl_->Receive(options_.idle_poll, stop_.wake_fd()));
        if (!data.has_value()) continue;
      }
      FERRY_ASSIGN_OR_RETURN(WalSenderMessage message, DecodeWalSenderMessage(*data));
      if (auto* x = std::get_if<XLogData>(&message)) {
        received_ = std::max(received_, x->start_lsn);
        auto decoded = DecodePgOutput(x->payload);
        if (!decoded.ok()) {
          return Annotate(decoded.status(),
                          absl::StrCat("XLogData at LSN ", FormatLsn(x->start_lsn)));
        }
        absl::Status handled = assembler_.Handle(*std::move(decoded));
        if (!handled.ok()) {
          return Annotate(handled, absl::StrCat("XLogData at LSN ", FormatLsn(x->start_lsn)));
        }
      } else {
        const auto& k = std::get<PrimaryKeepalive>(message);
        received_ = std::max(received_, k.wal_end);
        // The walsender sends a keepalive whenever it waits for WAL while our confirmed
        // position is behind what it sent: under load, after nearly every transaction. Unless it
        // asks for a reply, one that finds transactions pending is left to their append (when
        // the socket drains): flushing here made every transaction its own synced append.
        if (!k.reply_requested && (assembler_.has_pending() || assembler_.in_transaction())) {
          // Status still goes out on its own timer: it writes nothing, and the walsender must
          // hear from us while a long run of messages keeps the socket from draining.
          FERRY_RETURN_IF_ERROR(MaybeSendStatus(false));
          absl::MutexLock lock(&source_.mu_);
          source_.health_.received_position = received_;
          continue;
        }
        FERRY_RETURN_IF_ERROR(assembler_.Flush());
        FERRY_RETURN_IF_ERROR(assembler_.Heartbeat(k.wal_end, k.reply_requested));
        FERRY_RETURN_IF_ERROR(MaybeSendStatus(k.reply_requested));
      }
      absl::MutexLock lock(&source_.mu_);
      source_.health_.received_position = received_;
    }
    // Stopping: make what is complete durable and confirm it.
    FERRY_RETURN_IF_ERROR(assembler_.Flush());
    return MaybeSendStatus(true);
  }

  absl::Status MaybeSendStatus(bool force) {
    absl::Time now = source_.clock_->Now();
    uint64_t captured = target_.CapturedPosition();
    bool due = (captured != last_confirmed_ && now - last_status_ >= options_.status_interval) ||
               now - last_status_ >= kMaxStatusSilence;
    if (!force && !due) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(
        repl_->SendStatus(std::max(received_, captured), captured, absl::ToUnixMicros(now), false));
    last_status_ = now;
    last_confirmed_ = captured;
    absl::MutexLock lock(&source_.mu_);
    source_.health_.confirmed_position = captured;
    return absl::OkStatus();
  }

  void MaybeMeasureRetained() {
    absl::Time now = source_.clock_->Now();
    if (now - last_retained_ < options_.retained_bytes_interval) return;
    last_retained_ = now;
    int64_t retained = -1;
    auto conn = catalog_.Connection();
    if (conn.ok()) {
      auto r = (*conn)->ExecParams(
          "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
          "FROM pg_replication_slots WHERE slot_name = $1",
          {options_.slot});
      if (r.ok() && r->rows() == 1 && !r->IsNull(0, 0)) {
        if (!absl::SimpleAtoi(r->Get(0, 0), &retained)) retained = -1;
      }
    }
    absl::MutexLock lock(&source_.mu_);
    source_.health_.retained_bytes = retained;
  }

  // Sequence values travel as a signed message (logical decoding does not carry sequences);
  // the function emits one only when a value changed. A failure is logged, not fatal: the
  // values are carried at the next success and at a switchover's fence.
  void MaybeEmitSequences() {
    const absl::Time now = source_.clock_->Now();
    if (options_.sequence_interval <= absl::ZeroDuration() ||
        now - last_sequences_ < options_.sequence_interval) {
      return;
    }
    last_sequences_ = now;
    absl::Status s = catalog_.Connection().status();
    if (s.ok()) {
      s = (*catalog_.Connection())->Exec("SELECT ferry.emit_sequences('', true)").status();
    }
    std::optional<uint64_t> held;
    if (!s.ok() && (held = sequence_log_.Due(s.ToString())).has_value()) {
      spdlog::warn("capture: emitting sequence values failed: {}{}", s.ToString(),
                   HeldBackNote(*held));
    }
  }

  PostgresSource& source_;
  const PostgresSourceOptions& options_;
  CaptureTarget& target_;
  const StopSignal& stop_;
  PgRelationCatalog catalog_;
  RelationCache relations_;
  TransactionAssembler assembler_;
  std::unique_ptr<ReplicationConnection> repl_;
  uint64_t received_ = 0;
  uint64_t last_confirmed_ = 0;
  absl::Time last_status_ = absl::InfinitePast();
  CommitDelay commit_delay_{{.delay = options_.commit_delay, .siblings = options_.commit_siblings}};
  absl::Time last_retained_ = absl::InfinitePast();
  absl::Time last_sequences_ = absl::InfinitePast();
  LogLimiter sequence_log_{source_.clock_, absl::Minutes(1)};
};

absl::StatusOr<std::unique_ptr<PostgresSource>> PostgresSource::Create(
    const PostgresSourceOptions& options) {
  if (options.dsn.empty()) return absl::InvalidArgumentError("postgres source: dsn is empty");
  if (auto dsn = ReplicationDsn(options.dsn); !dsn.ok()) {
    return Annotate(dsn.status(), "postgres source: dsn");
  }
  if (options.publication.empty()) {
    return absl::InvalidArgumentError("postgres source: publication is empty");
  }
  if (!ValidSlotName(options.slot)) {
    return absl::InvalidArgumentError(
        absl::StrCat("postgres source: slot \"", options.slot,
                     "\" is not a valid slot name (1 to 63 of a-z, 0-9 and _)"));
  }
  if (options.origin_region.empty()) {
    return absl::InvalidArgumentError("postgres source: origin_region is empty");
  }
  if (options.max_fragment_changes == 0 || options.max_fragment_bytes == 0) {
    return absl::InvalidArgumentError("postgres source: fragment limits must be positive");
  }
  if (options.monitor_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("postgres source: monitor_interval must be positive");
  }
  if (options.snapshot_parallelism < 1) {
    return absl::InvalidArgumentError("postgres source: snapshot_parallelism must be >= 1");
  }
  for (const std::string& t : options.tables) {
    if (t.empty() || t.front() == '.' || t.back() == '.') {
      return absl::InvalidArgumentError(
          absl::StrCat("postgres source: tables: \"", t, "\" is not schema.name"));
    }
  }
  return std::unique_ptr<PostgresSource>(new PostgresSource(options));
}

PostgresSource::PostgresSource(const PostgresSourceOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      monitor_(std::make_unique<SourceMonitor>(
          SourceMonitorOptions{.dsn = options.dsn,
                               .publication = options.publication,
                               .slot = options.slot,
                               .keyless_tables = options.keyless_tables,
                               .interval = options.monitor_interval,
                               .clock = clock_})),
      session_errors_(clock_, absl::Minutes(1)) {}

std::string PostgresSource::StateKey(const std::string& name) const {
  return absl::StrCat("postgres/", options_.slot, "/", name);
}

absl::Status PostgresSource::Run(CaptureTarget& target, const StopSignal& stop) {
  monitor_->Start([&target] { return target.CapturedPosition(); });
  absl::Status s = RunSessions(target, stop);
  monitor_->Stop();
  return s;
}

absl::Status PostgresSource::RunSessions(CaptureTarget& target, const StopSignal& stop) {
  // No jitter: one source per region reconnects to its own database.
  Backoff backoff({.min = options_.min_backoff, .max = options_.max_backoff, .jitter = 0}, 0);
  while (!stop.stopped()) {
    bool streamed = false;
    absl::Status s;
    {
      Session session(*this, target, stop);
      s = session.Run(&streamed);
    }
    {
      absl::MutexLock lock(&mu_);
      health_.connected = false;
      health_.snapshot_in_progress = false;
      if (!s.ok()) health_.last_error = s.ToString();
    }
    if (stop.stopped() || s.code() == absl::StatusCode::kCancelled) break;
    if (!s.ok() && !Retryable(s)) return s;
    if (streamed) backoff.Reset();
    const absl::Duration delay = backoff.Next();
    // A lost connection (or any error retried here) is a log line, repeats rate limited.
    std::optional<uint64_t> held;
    if (!s.ok() && (held = session_errors_.Due(s.ToString())).has_value()) {
      spdlog::warn("postgres source: {} the source database (slot {}), retrying in {}: {}{}",
                   streamed ? "lost the replication connection to" : "cannot start capturing from",
                   options_.slot, absl::FormatDuration(delay), s.ToString(), HeldBackNote(*held));
    }
    stop.WaitFor(delay);
  }
  return absl::OkStatus();
}

SourceHealth PostgresSource::Health() const {
  SourceHealth h;
  {
    absl::MutexLock lock(&mu_);
    h = health_;
  }
  h.upstream_name = options_.slot;
  monitor_->Fill(h);
  return h;
}

UncapturedReport PostgresSource::Uncaptured(uint64_t captured_position) const {
  return monitor_->Uncaptured(captured_position);
}

std::string PostgresSource::FormatPosition(uint64_t position) const { return FormatLsn(position); }

absl::StatusOr<Source::ResnapshotResult> PostgresSource::Resnapshot(const std::string& table) {
  ResnapshotOptions o;
  o.dsn = options_.dsn;
  o.publication = options_.publication;
  o.staging_dir = options_.resnapshot_dir;
  o.lock_timeout = options_.resnapshot_lock_timeout;
  FERRY_ASSIGN_OR_RETURN(ResnapshotDone done, ResnapshotTable(o, table));
  return ResnapshotResult{done.rows, done.id};
}

absl::Status PostgresSource::PrepareTakeover(CaptureTarget& target) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, PgConnection::Connect(options_.dsn));
  FERRY_RETURN_IF_ERROR(EnsurePublication(*conn, options_));
  FERRY_RETURN_IF_ERROR(EnsureDdlCapture(*conn));
  FERRY_RETURN_IF_ERROR(DropSlot(*conn));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ReplicationConnection> repl,
                         ReplicationConnection::Connect(options_.dsn));
  FERRY_ASSIGN_OR_RETURN(SystemIdentity system, repl->IdentifySystem());
  FERRY_ASSIGN_OR_RETURN(CreatedSlot created, repl->CreateSlot(options_.slot, false));
  FERRY_RETURN_IF_ERROR(target.PutSourceState(
      StateKey("identity"), SlotIdentity{system.system_id, created.consistent_point}.Encode()));
  FERRY_RETURN_IF_ERROR(target.PutSourceState(
      StateKey("snapshot"), absl::StrCat("done ", FormatLsn(created.consistent_point))));
  if (created.consistent_point > target.CapturedPosition()) {
    FERRY_RETURN_IF_ERROR(target.AdvanceTo(created.consistent_point));
  }
  spdlog::info("capture: slot {} created at {} for this region's turn as primary", options_.slot,
               FormatLsn(created.consistent_point));
  return absl::OkStatus();
}

absl::Status PostgresSource::ReleaseCapture() {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, PgConnection::Connect(options_.dsn));
  FERRY_RETURN_IF_ERROR(DropSlot(*conn));
  // A standby creates the publication at its first start too: FOR ALL TABLES needs a
  // superuser, which apply's role is, and a later takeover then needs none.
  return EnsurePublication(*conn, options_);
}

absl::Status PostgresSource::DropSlot(PgConnection& conn) {
  const absl::Time give_up = clock_->Now() + absl::Seconds(10);
  while (true) {
    FERRY_ASSIGN_OR_RETURN(
        PgResult r, conn.ExecParams("SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                                    {options_.slot}));
    if (r.rows() == 0) return absl::OkStatus();
    if (r.Get(0, 0) != "t") {
      auto dropped = conn.ExecParams("SELECT pg_drop_replication_slot($1)", {options_.slot});
      // 42704: dropped meanwhile; 55006: became active meanwhile (the loop looks again).
      if (dropped.ok() || HasSqlState(dropped.status(), "42704")) {
        spdlog::info("capture: slot {} dropped (this region no longer captures)", options_.slot);
        return absl::OkStatus();
      }
      if (!HasSqlState(dropped.status(), "55006")) {
        return Annotate(dropped.status(), "dropping the slot");
      }
    }
    if (clock_->Now() >= give_up) {
      return absl::UnavailableError(
          absl::StrCat("slot ", options_.slot, " is still in use: its walsender did not exit"));
    }
    absl::SleepFor(absl::Milliseconds(50));  // the walsender exits once its client is gone
  }
}

}  // namespace ferry::pg
