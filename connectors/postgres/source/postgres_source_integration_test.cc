// Integration tests of PostgresSource against a real Postgres 15 (tests/support/pg_cluster.h).
// One cluster for the suite; every test works in its own database, publication and slot.
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/pg_connection.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "connectors/postgres/source/postgres_source.h"
#include "connectors/postgres/source/source_test_fixture.h"
#include "connectors/postgres/testing/memory_capture_target.h"
#include "gtest/gtest.h"
#include "tests/support/pg_cluster.h"

namespace ferry::pg {
namespace {

using ::ferry::testing::PgCluster;
using ::ferry::testing::PgClusterOptions;
using testing::MemoryCaptureTarget;

TEST_F(PostgresSourceTest, EveryBuiltInTypeFamilyRoundTrips) {
  Exec(R"sql(
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
    CREATE TYPE pair AS (a int, b text);
    CREATE TABLE types (
      id int PRIMARY KEY, i2 smallint, i8 bigint, num numeric(10,2), numnan numeric,
      f4 real, f8 double precision, f8neg double precision, txt text, vc varchar(20), ch char(3),
      by bytea, arr int[], tarr text[], js json, jsb jsonb, u uuid, ip inet, net cidr,
      mac macaddr, d date, t time, tz timetz, ts timestamp(3), tstz timestamptz, iv interval,
      b boolean, m mood, p posint, c pair, cash money, bits bit varying(8), pt point,
      rng int4range, oidv oid);
    INSERT INTO types VALUES (1, 32767, 9223372036854775807, 12345678.91, 'NaN', 'Infinity',
      1.0000000000000002, '-Infinity', E'h\u00e9llo "q" ''s'' \u2713 \\ back\ttab\nline', 'abc', 'ab',
      '\x00ff10', '{1,NULL,3}', '{"a b",NULL,"c\"d",""}', '{"k": [1, 2]}', '{"k": [1, 2]}',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', '10.0.0.0/8',
      '08:00:2b:01:02:03', '2024-02-29', '23:59:59.999999', '12:00+05:30',
      '2024-01-01 00:00:00.123456', '2024-01-01 00:00:00+00', '1 year 2 mons 3 days 04:05:06.789',
      true, 'happy', 5, ROW(1, 'x y'), 12.34, B'101', '(1.5,2)', '[1,10)', 4242);
    INSERT INTO types (id) VALUES (2);
  )sql");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  // The rows were written before the slot existed: write them again now.
  Exec(
      "CREATE TABLE types2 (LIKE types INCLUDING ALL); INSERT INTO types2 SELECT * FROM types; "
      "UPDATE types2 SET num = -0.5, m = 'sad' WHERE id = 1");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "types2");
  ASSERT_EQ(changes.size(), 3u);
  auto expected = Query("SELECT * FROM types2 ORDER BY id");
  ASSERT_EQ(expected.size(), 2u);
  auto check = [&](const v1::Tuple& tuple, const ::ferry::testing::Row& row) {
    ASSERT_EQ(tuple.values_size(), static_cast<int>(row.size()));
    for (size_t i = 0; i < row.size(); ++i) {
      std::string want = row[i].has_value() ? *row[i] : "<null>";
      EXPECT_EQ(Text(tuple.values(i)), want) << "column " << i;
    }
  };
  // Row 2: all NULLs but the key.
  check(changes[1].change->new_tuple(), expected[1]);
  // Row 1 after the update.
  EXPECT_EQ(changes[2].change->op(), v1::UPDATE);
  check(changes[2].change->new_tuple(), expected[0]);
  // Row 1 as inserted: every value but the two updated is the same text.
  const v1::Relation& r = *changes[0].relation;
  std::map<std::string, std::string> type_names;
  for (const auto& c : r.columns()) type_names[c.name()] = c.type_name();
  EXPECT_EQ(type_names["num"], "numeric(10,2)");
  EXPECT_EQ(type_names["vc"], "character varying(20)");
  EXPECT_EQ(type_names["m"], "mood");
  EXPECT_EQ(type_names["p"], "posint");
  EXPECT_EQ(type_names["ts"], "timestamp(3) without time zone");
  EXPECT_EQ(type_names["arr"], "integer[]");
  EXPECT_EQ(r.primary_key_size(), 1);
  EXPECT_EQ(r.replica_identity(), v1::REPLICA_IDENTITY_DEFAULT);
  EXPECT_TRUE(r.columns(0).not_null());
  EXPECT_TRUE(r.columns(0).part_of_key());
  EXPECT_EQ(Text(changes[0].change->new_tuple().values(4)), "NaN");
  EXPECT_EQ(Text(changes[0].change->new_tuple().values(5)), "Infinity");
  EXPECT_EQ(Text(changes[0].change->new_tuple().values(7)), "-Infinity");
  EXPECT_EQ(Text(changes[0].change->new_tuple().values(12)), "{1,NULL,3}");
}

TEST_F(PostgresSourceTest, UnusualIdentifiers) {
  Exec(R"sql(CREATE SCHEMA "My Schema";
    CREATE TABLE "My Schema"."select" ("Id" int PRIMARY KEY, "two words" text, "quo""te" int);)sql");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec(R"sql(INSERT INTO "My Schema"."select" VALUES (1, 'x', 2))sql");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "select");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].relation->schema(), "My Schema");
  EXPECT_EQ(changes[0].relation->columns(1).name(), "two words");
  EXPECT_EQ(changes[0].relation->columns(2).name(), "quo\"te");
  EXPECT_EQ(changes[0].relation->primary_key(0), "Id");
}

TEST_F(PostgresSourceTest, UnchangedToastStaysUnchanged) {
  Exec(
      "CREATE TABLE docs (id int PRIMARY KEY, body text, n int); "
      "ALTER TABLE docs ALTER body SET STORAGE EXTERNAL");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec(
      "INSERT INTO docs SELECT 1, string_agg(md5(g::text), '') , 1 FROM generate_series(1, 4000) "
      "g");
  Exec("UPDATE docs SET n = 2 WHERE id = 1");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "docs");
  ASSERT_EQ(changes.size(), 2u);
  auto body = Query("SELECT body FROM docs");
  EXPECT_EQ(changes[0].change->new_tuple().values(1).text(), *body[0][0]);
  EXPECT_EQ(changes[0].change->new_tuple().values(1).text().size(), 128000u);
  EXPECT_TRUE(changes[1].change->new_tuple().values(1).unchanged_toast());
  EXPECT_EQ(changes[1].change->new_tuple().values(2).text(), "2");
}

TEST_F(PostgresSourceTest, MultiStatementTransactionsAndRollbacks) {
  Exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec(
      "BEGIN; INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1; "
      "UPDATE t SET id = 3 WHERE id = 2; DELETE FROM t WHERE id = 1; COMMIT;");
  Exec("BEGIN; INSERT INTO t VALUES (10, 'never'); ROLLBACK;");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "t");
  ASSERT_EQ(changes.size(), 5u);
  EXPECT_EQ(changes[0].txn, changes[4].txn);  // one transaction, one fragment
  EXPECT_EQ(changes[2].change->op(), v1::UPDATE);
  EXPECT_TRUE(changes[3].change->old_is_key_only());  // the key changed: old key sent
  EXPECT_EQ(changes[3].change->old_tuple().values(0).text(), "2");
  EXPECT_EQ(changes[4].change->op(), v1::DELETE);
  EXPECT_TRUE(changes[4].change->old_is_key_only());
  for (const auto& c : changes)
    EXPECT_NE(c.change->new_tuple().values_size() > 0 ? Text(c.change->new_tuple().values(1)) : "",
              "never");
  EXPECT_GT(changes[0].txn->source_xid(), 0u);
  EXPECT_GT(changes[0].txn->end_position(), changes[0].txn->source_position());
}

TEST_F(PostgresSourceTest, HundredThousandRowTransactionIsFragmentedAndBounded) {
  Exec("CREATE TABLE big (id int PRIMARY KEY, pad text)");
  PostgresSourceOptions o = Options();
  o.max_fragment_changes = 5000;
  o.max_fragment_bytes = 256 << 10;
  StartSource(o);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO big SELECT g, repeat('x', 20) FROM generate_series(1, 100000) g");
  Sync();
  auto appends = target_.appends();
  std::vector<const v1::Transaction*> txn;
  for (const auto& a : appends) {
    size_t bytes = 0;
    for (const auto& f : a.fragments) bytes += f.ByteSizeLong();
    EXPECT_LE(bytes, size_t{2} * (256 << 10) + 4096) << "an Append larger than the bounds";
    for (const auto& f : a.fragments) {
      if (f.relations_size() == 1 && f.relations(0).name() == "big") txn.push_back(&f);
    }
  }
  ASSERT_GE(txn.size(), 20u);
  size_t rows = 0;
  for (size_t i = 0; i < txn.size(); ++i) {
    EXPECT_EQ(txn[i]->fragment(), i);
    EXPECT_EQ(txn[i]->last_fragment(), i + 1 == txn.size());
    EXPECT_LE(txn[i]->changes_size(), 5000);
    EXPECT_EQ(txn[i]->source_position(), txn[0]->source_position());
    rows += txn[i]->changes_size();
  }
  EXPECT_EQ(rows, 100000u);
}

TEST_F(PostgresSourceTest, TruncateAndTablesWithoutPrimaryKey) {
  Exec(
      "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); "
      "CREATE TABLE full_t (x int, y text); ALTER TABLE full_t REPLICA IDENTITY FULL; "
      "CREATE TABLE nokey (x int, y text)");
  // keyless_tables: refuse, so that nokey keeps REPLICA IDENTITY DEFAULT (the default policy
  // would set FULL: KeylessTableGetsReplicaIdentityFullAndItsUpdatesWork).
  PostgresSourceOptions options = Options();
  options.keyless_tables = KeylessTablePolicy::kRefuse;
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); TRUNCATE a, b RESTART IDENTITY");
  Exec("INSERT INTO full_t VALUES (1, 'one'); UPDATE full_t SET y = 'uno'; DELETE FROM full_t");
  Exec("INSERT INTO nokey VALUES (1, 'one')");
  Sync();
  auto fragments = Fragments();
  auto truncates = ChangesOf(fragments, "a");
  ASSERT_EQ(truncates.size(), 2u);
  EXPECT_EQ(truncates[1].change->op(), v1::TRUNCATE);
  EXPECT_EQ(truncates[1].change->truncate_relation_ids_size(), 2);
  EXPECT_TRUE(truncates[1].change->truncate_restart_identity());
  auto full = ChangesOf(fragments, "full_t");
  ASSERT_EQ(full.size(), 3u);
  EXPECT_EQ(full[0].relation->replica_identity(), v1::REPLICA_IDENTITY_FULL);
  EXPECT_FALSE(full[1].change->old_is_key_only());
  EXPECT_EQ(full[1].change->old_tuple().values(1).text(), "one");
  EXPECT_EQ(full[2].change->old_tuple().values(1).text(), "uno");
  auto nokey = ChangesOf(fragments, "nokey");
  ASSERT_EQ(nokey.size(), 1u);
  EXPECT_EQ(nokey[0].relation->primary_key_size(), 0);
  EXPECT_EQ(nokey[0].relation->replica_identity(), v1::REPLICA_IDENTITY_DEFAULT);
}

TEST_F(PostgresSourceTest, PartitionedTablesArePublishedAsTheirRoot) {
  Exec(
      "CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at); "
      "CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO "
      "('2024-01-01'); "
      "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO "
      "('2025-01-01');");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO events VALUES (1, '2023-05-01'), (2, '2024-05-01')");
  Sync();
  auto fragments = Fragments();
  EXPECT_EQ(ChangesOf(fragments, "events").size(), 2u);
  EXPECT_EQ(ChangesOf(fragments, "events_2023").size(), 0u);
}

TEST_F(PostgresSourceTest, FerryOriginTransactionsAreNotCaptured) {
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec(
      "SELECT pg_replication_origin_create('ferry_west'); "
      "SELECT pg_replication_origin_session_setup('ferry_west'); "
      "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);");
  Exec("INSERT INTO t VALUES (3)");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "t");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].change->new_tuple().values(0).text(), "3");
}

TEST_F(PostgresSourceTest, IdleDatabaseAdvancesAndReportsRetainedWal) {
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  // WAL written elsewhere (another database) must not hold the slot back.
  ASSERT_TRUE(cluster_
                  ->Exec("CREATE TABLE IF NOT EXISTS filler (x int); "
                         "INSERT INTO filler SELECT generate_series(1, 1000)",
                         "postgres")
                  .ok());
  auto lsn_text = cluster_->QueryValue("SELECT pg_current_wal_lsn()::text", "postgres");
  ASSERT_TRUE(lsn_text.ok());
  uint64_t lsn = *ParseLsn(**lsn_text);
  EXPECT_TRUE(WaitUntil([&] { return target_.CapturedPosition() >= lsn; }))
      << FormatLsn(target_.CapturedPosition()) << " < " << FormatLsn(lsn);
  EXPECT_TRUE(WaitUntil([&] { return source_->Health().confirmed_position >= lsn; }));
  EXPECT_TRUE(WaitUntil([&] { return source_->Health().retained_bytes >= 0; }));
  auto confirmed =
      Query(absl::StrCat("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                         "WHERE slot_name = 's_",
                         db_, "'"));
  ASSERT_EQ(confirmed.size(), 1u);
  EXPECT_LE(*ParseLsn(*confirmed[0][0]), target_.CapturedPosition());
}

TEST_F(PostgresSourceTest, SchemaChangesAreCapturedAndSigned) {
  // A capture role that is not a superuser may not install the event triggers: it is told what
  // to run instead.
  Exec("CREATE ROLE capturer LOGIN REPLICATION");
  Exec("CREATE PUBLICATION ferry FOR ALL TABLES WITH (publish_via_partition_root = true)");
  PostgresSourceOptions as_capturer = Options();
  as_capturer.dsn = absl::StrReplaceAll(as_capturer.dsn, {{"user=postgres", "user=capturer"}});
  StartSource(as_capturer);
  ASSERT_TRUE(WaitUntil([&] { return done_.load(); }));
  absl::Status refused = StopSource();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "only a superuser can install")) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "--print-ddl-capture-sql")) << refused;

  // Installed once by a superuser (twice: the script is idempotent), the role captures.
  Exec(std::string(DdlCaptureSql()));
  Exec(std::string(DdlCaptureSql()));
  StartSource(as_capturer);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }))
      << run_status_ << " " << source_->Health().last_error;
  Exec("CREATE TABLE d (id int PRIMARY KEY); ALTER TABLE d ADD COLUMN v text DEFAULT 'x'");
  Exec(
      "CREATE TABLE p (id int) PARTITION BY RANGE (id); "
      "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)");
  Exec("TRUNCATE p1");
  Exec("CREATE TEMP TABLE scratch (a int); DROP TABLE scratch");  // temporary: not captured
  Exec(
      "GRANT ALL ON d TO capturer; SET ROLE capturer; "
      "SELECT pg_logical_emit_message(true, 'ferry.ddl', 'DROP TABLE d'); "
      "SELECT pg_logical_emit_message(true, 'ferry.ddl', '" +
      std::string(64, '0') + " {\"v\":1}')");
  Sync();
  std::vector<std::string> authenticated;
  int forged = 0;
  for (const auto& f : target_.fragments()) {
    for (const auto& c : f.changes()) {
      if (c.op() != v1::MESSAGE || !absl::StartsWith(c.message_prefix(), "ferry.")) continue;
      if (!c.message_authenticated()) {
        ++forged;
        continue;
      }
      authenticated.push_back(c.message_prefix() + " " + c.message_content());
    }
  }
  EXPECT_EQ(forged, 2);
  ASSERT_EQ(authenticated.size(), 6u) << absl::StrJoin(authenticated, "\n");
  EXPECT_TRUE(absl::StrContains(authenticated[0], "\"tag\": \"CREATE TABLE\"")) << authenticated[0];
  EXPECT_TRUE(absl::StrContains(authenticated[1], "\"tag\": \"ALTER TABLE\"")) << authenticated[1];
  EXPECT_TRUE(absl::StrContains(authenticated[1], "\"ordinal\": 1")) << authenticated[1];
  EXPECT_TRUE(absl::StrContains(authenticated[3], "\"ordinal\": 2")) << authenticated[3];
  EXPECT_TRUE(absl::StartsWith(authenticated[4], "ferry.truncate ")) << authenticated[4];
  EXPECT_TRUE(absl::StrContains(authenticated[4], "\"name\": \"p1\"")) << authenticated[4];
  EXPECT_TRUE(absl::StrContains(authenticated[5], "\"tag\": \"GRANT\"")) << authenticated[5];
}

TEST_F(PostgresSourceTest, FerrysOwnTablesStayInTheirRegion) {
  // FOR ALL TABLES publishes schema ferry too (apply's bookkeeping on a region that was a
  // standby, the capture key): their changes are not captured, nor copied by the snapshot.
  Exec(
      "CREATE SCHEMA IF NOT EXISTS ferry; CREATE TABLE ferry.table_state_like (id int PRIMARY "
      "KEY); INSERT INTO ferry.table_state_like VALUES (1); CREATE TABLE mine (id int PRIMARY "
      "KEY); INSERT INTO mine VALUES (1)");
  PostgresSourceOptions o = Options();
  o.snapshot = true;
  StartSource(o);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO ferry.table_state_like VALUES (2); INSERT INTO mine VALUES (2)");
  Sync();
  const std::vector<v1::Transaction> fragments = target_.fragments();
  EXPECT_TRUE(ChangesOf(fragments, "table_state_like").empty());
  EXPECT_EQ(ChangesOf(fragments, "mine").size(), 3u);  // TRUNCATE, snapshot row, insert
}

TEST_F(PostgresSourceTest, SchemaChangesOfANonUtf8DatabaseArriveAsUtf8AndSigned) {
  ASSERT_TRUE(cluster_->Exec("DROP DATABASE " + db_, "postgres").ok());
  ASSERT_TRUE(cluster_
                  ->Exec(absl::StrCat("CREATE DATABASE ", db_,
                                      " ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                                      "TEMPLATE template0"),
                         "postgres")
                  .ok());
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  // The session's encoding is the database's: 0xE9 is 'e-acute' in LATIN1.
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  Exec("COMMENT ON TABLE t IS 'caf\xe9'");
  Sync();
  int comments = 0;
  for (const auto& f : target_.fragments()) {
    for (const auto& c : f.changes()) {
      if (c.op() != v1::MESSAGE || c.message_prefix() != "ferry.ddl") continue;
      EXPECT_TRUE(c.message_authenticated()) << c.message_content();
      if (absl::StrContains(c.message_content(), "café")) ++comments;  // UTF-8 bytes
    }
  }
  EXPECT_EQ(comments, 1);
}

TEST_F(PostgresSourceTest, MessagesSignedWithAKeyThatWasReplacedAreStillAuthenticated) {
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Sync();
  ASSERT_TRUE(StopSource().ok());
  // Signed with the first key while capture is down; then the key is made anew (the
  // documented recovery from a lost or damaged key) before capture reads that message.
  Exec("CREATE TABLE before_new_key (id int PRIMARY KEY)");
  Exec("DELETE FROM ferry.capture_key");
  Exec(std::string(DdlCaptureSql()));
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("CREATE TABLE after_new_key (id int PRIMARY KEY)");
  Sync();
  int before = 0, after = 0;
  for (const auto& f : target_.fragments()) {
    for (const auto& c : f.changes()) {
      if (c.op() != v1::MESSAGE || c.message_prefix() != "ferry.ddl") continue;
      EXPECT_TRUE(c.message_authenticated()) << c.message_content();
      before += absl::StrContains(c.message_content(), "before_new_key");
      after += absl::StrContains(c.message_content(), "after_new_key");
    }
  }
  EXPECT_EQ(before, 1);
  EXPECT_EQ(after, 1);
}

TEST_F(PostgresSourceTest, SlotDroppedOrRecreatedStopsWithClearError) {
  ASSERT_NO_FATAL_FAILURE(CaptureARowThenStop());
  Exec(absl::StrCat("SELECT pg_drop_replication_slot('s_", db_, "')"));
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return done_.load(); }));
  absl::Status s = StopSource();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no longer exists")) << s;

  // Recreated by someone else, after more writes: its position is ahead of what we have.
  Exec("INSERT INTO t VALUES (2)");
  Exec(absl::StrCat("SELECT pg_create_logical_replication_slot('s_", db_, "', 'pgoutput')"));
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return done_.load(); }));
  s = StopSource();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "ahead of what was captured")) << s;
}

// Sets the suite's cluster's max_slot_wal_keep_size for one test, and resets it however the test
// ends (the cluster is shared by every test of the suite).
class SlotWalLimit {
 public:
  SlotWalLimit(::ferry::testing::PgCluster* cluster, std::string db, const std::string& limit)
      : cluster_(cluster), db_(std::move(db)) {
    set_ = cluster_->Exec("ALTER SYSTEM SET max_slot_wal_keep_size = '" + limit + "'", db_);
    if (set_.ok()) set_ = cluster_->Exec("SELECT pg_reload_conf()", db_);
  }
  ~SlotWalLimit() {
    (void)cluster_->Exec("ALTER SYSTEM RESET max_slot_wal_keep_size", db_);
    (void)cluster_->Exec("SELECT pg_reload_conf()", db_);
  }
  const absl::Status& status() const { return set_; }

 private:
  ::ferry::testing::PgCluster* const cluster_;
  const std::string db_;
  absl::Status set_;
};

// A slot Postgres invalidated (max_slot_wal_keep_size: the WAL it needed was removed) can never
// stream again: the capture stops with the recovery instead of the walsender's bare refusal.
TEST_F(PostgresSourceTest, AnInvalidatedSlotStopsWithClearError) {
  ASSERT_NO_FATAL_FAILURE(CaptureARowThenStop());

  // The suite's cluster keeps no WAL for slots beyond 1 MB while this test runs.
  std::optional<SlotWalLimit> limit(std::in_place, cluster_, db_, "1MB");
  ASSERT_TRUE(limit->status().ok()) << limit->status();
  const std::string status_sql =
      absl::StrCat("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's_", db_, "'");
  std::string status;
  for (int round = 0; round < 10 && status != "lost"; ++round) {
    Exec(absl::StrCat("INSERT INTO t VALUES (", 100 + round, ")"));
    Exec("SELECT pg_switch_wal()");
    Exec("CHECKPOINT");  // removes the segments past the limit and invalidates the slot
    auto value = cluster_->QueryValue(status_sql, db_);
    ASSERT_TRUE(value.ok()) << value.status();
    status = value->value_or("");
  }
  limit.reset();
  ASSERT_EQ(status, "lost");

  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return done_.load(); }));
  const absl::Status s = StopSource();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "it was invalidated")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "max_slot_wal_keep_size")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "Recovery: connectors/postgres/source/README.md"))
      << s;
}

// A stop ends an idle capture's wait for the walsender at once (StopSignal::wake_fd): a
// switchover's drain and a shutdown wait for it. With the idle wait set to two minutes, a
// capture that only looked at the stop when it woke would stop at the walsender's next
// keepalive, half of this fixture's wal_sender_timeout (10 s) after the last reply: 5.2 s
// measured without the wake-up, against milliseconds with it. The bound is a liveness check.
TEST_F(PostgresSourceTest, AStopEndsAnIdleCapturesWaitAtOnce) {
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  PostgresSourceOptions o = Options();
  o.idle_poll = absl::Minutes(2);
  StartSource(o);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO t VALUES (1)");
  Sync();  // captured: the capture is back in its idle wait
  const absl::Time before = absl::Now();
  ASSERT_TRUE(StopSource().ok());
  EXPECT_LT(absl::Now() - before, absl::Seconds(3));
}

TEST_F(PostgresSourceTest, PostgresRestartLosesNothingAndDuplicatesNothing) {
  // Issue #14: a lost source connection is a log line, not only a field of Health().
  auto lines = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  spdlog::default_logger()->sinks().push_back(lines);
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  StartSource(Options());
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  for (int i = 1; i <= 50; ++i) Exec(absl::StrCat("INSERT INTO t VALUES (", i, ")"));
  ASSERT_TRUE(cluster_->Restart(PgCluster::StopMode::kImmediate).ok());
  for (int i = 51; i <= 100; ++i) Exec(absl::StrCat("INSERT INTO t VALUES (", i, ")"));
  Sync();
  auto fragments = Fragments();
  std::map<std::string, int> seen;
  for (const auto& c : ChangesOf(fragments, "t")) ++seen[c.change->new_tuple().values(0).text()];
  EXPECT_EQ(seen.size(), 100u);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << "id " << id << " captured " << n << " times";
  ASSERT_TRUE(StopSource().ok());
  spdlog::default_logger()->sinks().pop_back();
  bool logged = false;
  for (const std::string& line : lines->last_formatted()) {
    logged |= absl::StrContains(line, "postgres source: lost the replication connection") &&
              absl::StrContains(line, absl::StrCat("slot s_", db_));
  }
  EXPECT_TRUE(logged) << "no log line for the lost connection";
}

// Issue #14: what the source committed and capture has not taken yet is reported beside the
// RPO. Capture is held (appends block, as behind a full disk); the monitor's own connection
// still measures the WAL. Fails before the change: Uncaptured() did not exist (status said
// nothing while capture was behind).
TEST_F(PostgresSourceTest, UncapturedWalIsReportedWhileCaptureIsHeldAndZeroAfterCatchUp) {
  Exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(50);
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Sync();
  target_.HoldAppends(true);
  Exec("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g");
  auto lsn_text = cluster_->QueryValue("SELECT pg_current_wal_lsn()::text", db_);
  ASSERT_TRUE(lsn_text.ok() && lsn_text->has_value());
  const uint64_t lsn = *ParseLsn(**lsn_text);
  // Capture may have confirmed a position inside the insert's WAL: a keepalive the walsender
  // sends while it decodes that WAL (nothing is pending yet) moves it there, as it may. Never
  // past the insert's commit: that transaction waits on the held append.
  const uint64_t held_at = target_.CapturedPosition();
  ASSERT_LT(held_at, lsn);
  // Measured past the insert, and behind for at least two measurements.
  ASSERT_TRUE(WaitUntil([&] {
    const UncapturedReport r = source_->Uncaptured(target_.CapturedPosition());
    return r.known && r.bytes >= lsn - held_at && r.behind > absl::ZeroDuration();
  }));
  const UncapturedReport behind = source_->Uncaptured(target_.CapturedPosition());
  EXPECT_GE(*ParseLsn(behind.upstream_position), lsn);
  EXPECT_GE(behind.bytes, lsn - target_.CapturedPosition())
      << "the WAL from capture's position to the insert's end";

  target_.HoldAppends(false);
  Sync();
  EXPECT_TRUE(WaitUntil([&] {
    const UncapturedReport r = source_->Uncaptured(target_.CapturedPosition());
    return r.known && r.bytes == 0 && r.behind == absl::ZeroDuration();
  })) << source_->Uncaptured(target_.CapturedPosition()).bytes;
}

// With the slot dropped capture stops, yet the source's WAL keeps being measured: the
// uncaptured bytes grow with what the application writes.
TEST_F(PostgresSourceTest, UncapturedGrowsWhileTheSlotIsDropped) {
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(50);
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Sync();
  ASSERT_TRUE(StopSource().ok());
  ASSERT_NO_FATAL_FAILURE(WaitForSlotInactive());
  Exec(absl::StrCat("SELECT pg_drop_replication_slot('s_", db_, "')"));
  Exec("INSERT INTO t SELECT generate_series(1, 5000)");
  auto lsn_text = cluster_->QueryValue("SELECT pg_current_wal_lsn()::text", db_);
  ASSERT_TRUE(lsn_text.ok() && lsn_text->has_value());
  const uint64_t lsn = *ParseLsn(**lsn_text);
  StartSource(options);  // a new source object: nothing measured before this start
  ASSERT_TRUE(WaitUntil([&] { return done_.load(); }));
  EXPECT_EQ(StopSource().code(), absl::StatusCode::kFailedPrecondition);
  const UncapturedReport r = source_->Uncaptured(target_.CapturedPosition());
  ASSERT_TRUE(r.known);
  EXPECT_GE(r.bytes, lsn - target_.CapturedPosition());
}

// Issue #14 item 11: a keyless table under FOR ALL TABLES makes the application's UPDATE fail
// on the primary. Default policy: Ferry sets REPLICA IDENTITY FULL (a table created while it
// runs is noticed by the monitor), and the update then works and is captured.
TEST_F(PostgresSourceTest, KeylessTableGetsReplicaIdentityFullAndItsUpdatesWork) {
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(50);
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("CREATE TABLE nopk (x int, y text)");
  Exec("INSERT INTO nopk VALUES (1, 'a')");
  ASSERT_TRUE(WaitUntil([&] {
    auto v =
        cluster_->QueryValue("SELECT relreplident::text FROM pg_class WHERE relname = 'nopk'", db_);
    return v.ok() && v->has_value() && **v == "f";
  }));
  Exec("UPDATE nopk SET y = 'b' WHERE x = 1");
  Exec("DELETE FROM nopk WHERE x = 1");
  Sync();
  auto fragments = Fragments();
  auto changes = ChangesOf(fragments, "nopk");
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[1].change->op(), v1::UPDATE);
  EXPECT_EQ(changes[2].change->op(), v1::DELETE);
  EXPECT_TRUE(source_->Health().blocked_tables.empty());
}

// Under keyless_tables: refuse Ferry changes nothing and names the table until it has a key.
TEST_F(PostgresSourceTest, KeylessTableUnderRefuseIsNamedUntilItHasAKey) {
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(50);
  options.keyless_tables = KeylessTablePolicy::kRefuse;
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("CREATE TABLE nopk (x int)");
  ASSERT_TRUE(WaitUntil([&] { return !source_->Health().blocked_tables.empty(); }));
  SourceHealth h = source_->Health();
  ASSERT_EQ(h.blocked_tables.size(), 1u);
  EXPECT_EQ(h.blocked_tables[0], "public.nopk");
  ASSERT_FALSE(h.warnings.empty());
  EXPECT_TRUE(absl::StrContains(h.warnings[0], "public.nopk")) << h.warnings[0];
  EXPECT_TRUE(absl::StrContains(h.warnings[0], "UPDATE and DELETE")) << h.warnings[0];
  // The failure the operator would otherwise not have been told about.
  Exec("INSERT INTO nopk VALUES (1)");
  absl::Status update = cluster_->Exec("UPDATE nopk SET x = 2", db_);
  EXPECT_FALSE(update.ok());
  EXPECT_TRUE(absl::StrContains(update.message(), "replica identity")) << update;
  auto identity =
      cluster_->QueryValue("SELECT relreplident::text FROM pg_class WHERE relname = 'nopk'", db_);
  ASSERT_TRUE(identity.ok() && identity->has_value());
  EXPECT_EQ(**identity, "d");
  Exec("ALTER TABLE nopk ADD PRIMARY KEY (x)");
  EXPECT_TRUE(WaitUntil([&] { return source_->Health().blocked_tables.empty(); }));
}

// A slot that has used more than half of what max_slot_wal_keep_size lets Postgres keep for it
// is a warning before Postgres invalidates it: here capture stalls (its appends held, as behind
// a full disk) while the application writes about 40 MB of WAL under a 48 MB limit.
TEST_F(PostgresSourceTest, ASlotNearItsWalLimitIsWarnedOfBeforePostgresInvalidatesIt) {
  Exec("CREATE TABLE t (id int PRIMARY KEY, pad text)");
  const SlotWalLimit limit(cluster_, db_, "48MB");
  ASSERT_TRUE(limit.status().ok()) << limit.status();
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(20);
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
  Exec("INSERT INTO t VALUES (0, 'captured')");
  Sync();
  // Caught up: once capture's confirmation has moved the slot, nothing to warn of.
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().warnings.empty(); }))
      << absl::StrJoin(source_->Health().warnings, " | ");

  target_.HoldAppends(true);
  Exec("INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, 36000) g");
  auto warned = [&] {
    for (const std::string& w : source_->Health().warnings) {
      if (absl::StrContains(w, "max_slot_wal_keep_size")) return true;
    }
    return false;
  };
  const bool seen = WaitUntil(warned);
  target_.HoldAppends(false);
  ASSERT_TRUE(seen) << "no warning; warnings: " << absl::StrJoin(source_->Health().warnings, " | ");
  const std::vector<std::string> warnings = source_->Health().warnings;
  ASSERT_EQ(warnings.size(), 1u) << absl::StrJoin(warnings, " | ");
  EXPECT_TRUE(absl::StrContains(warnings[0], absl::StrCat("replication slot \"s_", db_, "\"")))
      << warnings[0];
  EXPECT_TRUE(absl::StrContains(warnings[0], "Postgres keeps at most")) << warnings[0];
  EXPECT_TRUE(absl::StrContains(warnings[0], "re-seeded")) << warnings[0];
}

// Issue #14 item 12: large objects are not replicated, and the source says so.
TEST_F(PostgresSourceTest, LargeObjectsAreReportedAsNotReplicated) {
  PostgresSourceOptions options = Options();
  options.monitor_interval = absl::Milliseconds(20);
  StartSource(options);
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().unreplicated_objects == 0; }));
  EXPECT_TRUE(source_->Health().warnings.empty());
  Exec("SELECT lo_from_bytea(0, 'not replicated'), lo_from_bytea(0, 'nor this')");
  ASSERT_TRUE(WaitUntil([&] { return source_->Health().unreplicated_objects == 2; }));
  const SourceHealth h = source_->Health();
  ASSERT_EQ(h.warnings.size(), 1u);
  EXPECT_TRUE(absl::StrContains(h.warnings[0], "NOT replicated")) << h.warnings[0];
  EXPECT_TRUE(absl::StrContains(h.warnings[0], "2 large object")) << h.warnings[0];
}

// The capture role's missing grants stop capture with the grant named, one after the other as
// they are fixed, instead of libpq's walsender refusal. Fails before the change: the message
// was "must be superuser or replication role to start walsender".
TEST_F(PostgresSourceTest, CaptureRoleWithoutPrivilegesGetsTheGrantNamed) {
  const std::string role = absl::StrCat("cap_", db_);
  Exec(absl::StrCat("CREATE ROLE ", role, " LOGIN"));
  Exec("CREATE TABLE t (id int PRIMARY KEY)");
  PostgresSourceOptions options = Options();
  options.dsn = absl::StrCat(cluster_->dsn(db_), " user=", role);
  options.snapshot = true;
  auto run_once = [&]() -> absl::Status {
    MemoryCaptureTarget target;
    auto source = PostgresSource::Create(options);
    if (!source.ok()) return source.status();
    StopSignal stop;
    return (*source)->Run(target, stop);
  };
  absl::Status s = run_once();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "lacks the REPLICATION attribute")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "ALTER ROLE \"" + role + "\" REPLICATION")) << s;

  Exec(absl::StrCat("ALTER ROLE ", role, " REPLICATION"));
  s = run_once();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "FOR ALL TABLES (only a superuser can)")) << s;

  Exec("CREATE PUBLICATION ferry FOR ALL TABLES WITH (publish_via_partition_root = true)");
  s = run_once();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "GRANT SELECT ON public.t TO \"" + role + "\"")) << s;

  Exec(absl::StrCat("GRANT SELECT ON t TO ", role));
  s = run_once();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "only a superuser can install")) << s;

  // Granted, and the schema-change capture installed by a superuser: capture starts (and is
  // stopped once streaming).
  Exec(std::string(DdlCaptureSql()));
  StartSource(options);
  EXPECT_TRUE(WaitUntil([&] { return source_->Health().connected; }))
      << run_status_ << " " << source_->Health().last_error;
  EXPECT_TRUE(StopSource().ok());
}

}  // namespace
}  // namespace ferry::pg
