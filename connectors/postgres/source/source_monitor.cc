#include "connectors/postgres/source/source_monitor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "connectors/postgres/common/lsn.h"
#include "engine/base/status_macros.h"
#include "engine/base/thread_name.h"

namespace ferry::pg {
namespace {

// Marks kept while capture stays behind (one a round); past it the oldest is kept and the
// newer ones thinned, so "behind since" stays exact and memory bounded.
constexpr size_t kMaxMarks = 4096;
// How often Ferry tries again to set REPLICA IDENTITY FULL on a table it could not change.
constexpr absl::Duration kAlterRetry = absl::Minutes(1);

// Every leaf table the publication publishes changes of (with publish_via_partition_root the
// publication lists the root; the application writes the partitions) that has no usable
// replica identity: default identity and no primary key, NOTHING, or an identity index that
// no longer exists.
constexpr char kKeylessSql[] =
    "WITH pub AS (SELECT relid FROM pg_get_publication_tables($1)), "
    "rels AS (SELECT relid FROM pub UNION "
    "         SELECT pt.relid FROM pub CROSS JOIN LATERAL pg_partition_tree(pub.relid) pt "
    "         WHERE pt.isleaf) "
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relreplident "
    "FROM rels JOIN pg_class c ON c.oid = rels.relid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND (c.relreplident = 'n' "
    "  OR (c.relreplident = 'd' AND NOT EXISTS "
    "      (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) "
    "  OR (c.relreplident = 'i' AND NOT EXISTS "
    "      (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))) "
    "ORDER BY 1";

}  // namespace

SourceMonitor::SourceMonitor(const SourceMonitorOptions& options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

SourceMonitor::~SourceMonitor() { Stop(); }

void SourceMonitor::Start(std::function<uint64_t()> captured) {
  Stop();
  stop_ = std::make_unique<absl::Notification>();
  thread_ = std::thread(
      [this, captured = std::move(captured), stop = stop_.get()] { Loop(captured, stop); });
}

void SourceMonitor::Stop() {
  if (!thread_.joinable()) return;
  stop_->Notify();
  thread_.join();
}

void SourceMonitor::Loop(std::function<uint64_t()> captured, const absl::Notification* stop) {
  SetCurrentThreadName("pg-monitor");
  do {
    Round(captured);
  } while (!stop->WaitForNotificationWithTimeout(options_.interval));
  conn_.reset();
}

void SourceMonitor::Round(const std::function<uint64_t()>& captured) {
  absl::Status s;
  if (conn_ == nullptr || conn_->broken()) {
    conn_.reset();
    auto conn = PgConnection::Connect(options_.dsn);
    if (conn.ok()) {
      conn_ = *std::move(conn);
      // Never hold the application up: a lock Ferry waits for (ALTER TABLE) gives up quickly.
      // No JIT: the keyless tables' query joins set-returning functions whose default
      // estimates (1,000 rows each) put it over jit_above_cost, and compiling it took 15 of its
      // 15.4 ms, every round (bench/side_by_side/FINDINGS.md, session 17).
      s = conn_->Exec("SET lock_timeout = '2s'; SET statement_timeout = '30s'; SET jit = off")
              .status();
    } else {
      s = conn.status();
    }
  }
  if (s.ok()) s = MeasureWal(*conn_, captured());
  std::vector<Blocked> blocked;
  if (s.ok()) {
    auto keyless = CheckKeyless(*conn_);
    if (keyless.ok()) {
      blocked = *std::move(keyless);
    } else {
      s = keyless.status();
    }
  }
  std::optional<std::vector<std::string>> tables;
  if (s.ok()) {
    auto listed = ListTables(*conn_);
    if (listed.ok()) {
      tables = *std::move(listed);
    } else {
      s = listed.status();
    }
  }
  std::optional<int64_t> large_objects;
  if (s.ok() && rounds_ % static_cast<uint64_t>(std::max(1, options_.large_object_rounds)) == 0) {
    auto count = CountLargeObjects(*conn_);
    if (count.ok()) {
      large_objects = *count;
    } else {
      s = count.status();
    }
  }
  std::string slot_warning;
  if (s.ok()) {
    auto checked = CheckSlotAllowance(*conn_);
    if (checked.ok()) {
      slot_warning = *std::move(checked);
    } else {
      s = checked.status();
    }
  }
  if (s.ok()) {
    ++rounds_;
    {
      absl::MutexLock lock(&mu_);
      blocked_ = blocked;
      slot_warning_ = std::move(slot_warning);
      if (tables.has_value()) tables_ = *std::move(tables);
      if (large_objects.has_value()) large_objects_ = *large_objects;
    }
    SourceHealth h;
    Fill(h);
    LogWarnings(h.warnings);
    return;
  }
  // Rate limited: the same error at most once a minute.
  const std::string error = s.ToString();
  if (error != last_error_logged_ || clock_->Now() - last_error_time_ >= absl::Minutes(1)) {
    spdlog::warn("postgres source: cannot check the source database (publication {}): {}",
                 options_.publication, error);
    last_error_logged_ = error;
    last_error_time_ = clock_->Now();
  }
  if (conn_ != nullptr && conn_->broken()) conn_.reset();
}

absl::Status SourceMonitor::MeasureWal(PgConnection& conn, uint64_t captured) {
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT pg_current_wal_lsn()::text"));
  if (r.rows() != 1 || r.IsNull(0, 0)) {
    return absl::InternalError("pg_current_wal_lsn() returned no row");
  }
  FERRY_ASSIGN_OR_RETURN(uint64_t lsn, ParseLsn(r.Get(0, 0)));
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  wal_position_ = lsn;
  measured_at_ = now;
  while (!marks_.empty() && marks_.front().second <= captured) marks_.pop_front();
  if (lsn > captured) {
    if (marks_.size() >= kMaxMarks) marks_.erase(marks_.begin() + 1);
    marks_.emplace_back(now, lsn);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SourceMonitor::Blocked>> SourceMonitor::CheckKeyless(
    PgConnection& conn) {
  // Before the source created the publication there is nothing it publishes.
  FERRY_ASSIGN_OR_RETURN(
      PgResult exists,
      conn.ExecParams("SELECT 1 FROM pg_publication WHERE pubname = $1", {options_.publication}));
  if (exists.rows() == 0) return std::vector<Blocked>();
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.ExecParams(kKeylessSql, {options_.publication}));
  std::vector<Blocked> blocked;
  std::set<std::string> seen;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string table(r.Get(i, 0));
    const std::string identity(r.Get(i, 1));
    seen.insert(table);
    std::string reason;
    if (identity == "d") {
      reason = "has no primary key (and REPLICA IDENTITY DEFAULT)";
    } else if (identity == "n") {
      reason = "has REPLICA IDENTITY NOTHING";
    } else {
      reason = "has lost its replica identity index";
    }
    const std::string fix =
        absl::StrCat("add a primary key or run ALTER TABLE ", table, " REPLICA IDENTITY FULL");
    if (identity == "d" && options_.keyless_tables == KeylessTablePolicy::kReplicaIdentityFull) {
      auto failed = alter_failed_.find(table);
      if (failed == alter_failed_.end() || clock_->Now() - failed->second.first >= kAlterRetry) {
        absl::Status altered =
            conn.Exec(absl::StrCat("ALTER TABLE ", table, " REPLICA IDENTITY FULL")).status();
        if (altered.ok()) {
          spdlog::warn(
              "postgres source: table {} of publication {} has no primary key: set REPLICA "
              "IDENTITY FULL on it (postgres.keyless_tables: replica_identity_full), so that "
              "the application's UPDATE and DELETE on it work and replicate",
              table, options_.publication);
          alter_failed_.erase(table);
          continue;
        }
        if (conn.broken()) return altered;
        alter_failed_[table] = {clock_->Now(), std::string(altered.message())};
      }
      blocked.push_back({table, absl::StrCat(reason,
                                             ": the application's UPDATE and DELETE on it "
                                             "fail; Ferry could not set REPLICA IDENTITY "
                                             "FULL (",
                                             alter_failed_[table].second, "); ", fix)});
      continue;
    }
    blocked.push_back(
        {table, absl::StrCat(reason, ": the application's UPDATE and DELETE on it fail",
                             options_.keyless_tables == KeylessTablePolicy::kRefuse
                                 ? " (postgres.keyless_tables: refuse, Ferry changes nothing)"
                                 : "",
                             "; ", fix)});
  }
  for (auto it = alter_failed_.begin(); it != alter_failed_.end();) {
    it = seen.count(it->first) > 0 ? std::next(it) : alter_failed_.erase(it);
  }
  return blocked;
}

absl::StatusOr<std::vector<std::string>> SourceMonitor::ListTables(PgConnection& conn) {
  // Named as apply names them (schema.name, unquoted); Ferry's own tables are not replicated.
  FERRY_ASSIGN_OR_RETURN(
      PgResult r,
      conn.ExecParams("SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                      "WHERE pubname = $1 AND schemaname <> 'ferry' ORDER BY 1",
                      {options_.publication}));
  std::vector<std::string> tables;
  for (int i = 0; i < r.rows(); ++i) tables.emplace_back(r.Get(i, 0));
  return tables;
}

absl::StatusOr<int64_t> SourceMonitor::CountLargeObjects(PgConnection& conn) {
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT count(*) FROM pg_largeobject_metadata"));
  int64_t count = 0;
  if (r.rows() != 1 || !absl::SimpleAtoi(r.Get(0, 0), &count)) {
    return absl::InternalError("counting large objects returned no number");
  }
  return count;
}

absl::StatusOr<std::string> SourceMonitor::CheckSlotAllowance(PgConnection& conn) {
  if (options_.slot.empty()) return std::string();
  // safe_wal_size is NULL without a limit (max_slot_wal_keep_size = -1, the default).
  FERRY_ASSIGN_OR_RETURN(
      PgResult r, conn.ExecParams("SELECT wal_status, safe_wal_size, "
                                  "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
                                  "FROM pg_replication_slots WHERE slot_name = $1",
                                  {options_.slot}));
  if (r.rows() != 1) return std::string();  // a missing slot stops capture, which says so
  const std::string name = absl::StrCat("replication slot \"", options_.slot, "\"");
  const std::string reseed =
      "the standby must then be re-seeded (connectors/postgres/source/README.md, Recovery)";
  const std::string status = r.IsNull(0, 0) ? "" : std::string(r.Get(0, 0));
  if (status == "lost") {
    return absl::StrCat(name,
                        " was invalidated by Postgres (max_slot_wal_keep_size): it can never "
                        "stream again; ",
                        reseed);
  }
  if (status == "unreserved") {
    return absl::StrCat(name,
                        " holds more WAL than max_slot_wal_keep_size allows: Postgres "
                        "invalidates it at its next checkpoint unless capture catches up first; ",
                        reseed);
  }
  int64_t safe = 0, retained = 0;
  if (r.IsNull(0, 1) || r.IsNull(0, 2) || !absl::SimpleAtoi(r.Get(0, 1), &safe) ||
      !absl::SimpleAtoi(r.Get(0, 2), &retained) || safe >= retained) {
    return std::string();
  }
  auto mib = [](int64_t bytes) {
    return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  };
  return absl::StrCat(name, " retains ", mib(retained), " of WAL and Postgres keeps at most ",
                      mib(std::max<int64_t>(safe, 0)),
                      " more for it (max_slot_wal_keep_size): if capture falls that much further "
                      "behind, Postgres invalidates the slot, and ",
                      reseed);
}

UncapturedReport SourceMonitor::Uncaptured(uint64_t captured_position) const {
  UncapturedReport r;
  absl::MutexLock lock(&mu_);
  if (wal_position_ == 0) return r;
  r.known = true;
  r.measured_at = measured_at_;
  r.upstream_position = FormatLsn(wal_position_);
  r.bytes = wal_position_ > captured_position ? wal_position_ - captured_position : 0;
  for (const auto& [time, lsn] : marks_) {
    if (lsn > captured_position) {
      r.behind = std::max(absl::ZeroDuration(), measured_at_ - time);
      break;
    }
  }
  if (r.bytes == 0) r.behind = absl::ZeroDuration();
  return r;
}

void SourceMonitor::Fill(SourceHealth& health) const {
  absl::MutexLock lock(&mu_);
  health.unreplicated_objects = large_objects_;
  health.tables = tables_;
  health.blocked_tables.clear();
  for (const Blocked& b : blocked_) {
    health.blocked_tables.push_back(b.table);
    health.warnings.push_back(absl::StrCat("table ", b.table, " ", b.reason));
  }
  if (!slot_warning_.empty()) health.warnings.push_back(slot_warning_);
  if (large_objects_ > 0) {
    health.warnings.push_back(absl::StrCat(
        large_objects_,
        " large object(s) (pg_largeobject_metadata) exist in the source database: large "
        "objects (lo_*) are NOT replicated by Ferry; keep such data in bytea columns or copy "
        "the large objects yourself"));
  }
}

void SourceMonitor::LogWarnings(const std::vector<std::string>& now) {
  // A warning is the same one while only its numbers change (a count of large objects).
  auto key = [](const std::string& w) {
    std::string k;
    for (char c : w) {
      if (c < '0' || c > '9') k += c;
    }
    return k;
  };
  const absl::Time t = clock_->Now();
  std::set<std::string> keys;
  for (const std::string& w : now) {
    const std::string k = key(w);
    keys.insert(k);
    auto it = logged_.find(k);
    if (it == logged_.end() || t - it->second >= options_.warning_repeat) {
      spdlog::warn("postgres source: {}", w);
      logged_[k] = t;
    }
  }
  for (auto it = logged_.begin(); it != logged_.end();) {
    if (keys.count(it->first) == 0) {
      spdlog::info("postgres source: cleared: {}", it->first);
      it = logged_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace ferry::pg
