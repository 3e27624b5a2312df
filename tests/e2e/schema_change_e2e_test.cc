// Schema changes on the primary reach the standby as the source's own DDL, at their place in
// the history (docs/schema-changes.md): every case of issue #14 items 2-6 ends with the same
// rows AND the same table definitions (columns, defaults, generated expressions, constraints,
// indexes, partitions) on both clusters; a DDL command Ferry cannot isolate stops its table
// with a reason naming it; a forged "ferry.ddl" message does nothing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

// One table's definition as canonical text: what a failover would expose to the application.
constexpr char kDefinition[] = R"sql(
  SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '<missing>') FROM (
    SELECT format('column %s %s notnull=%s default=%s generated=%s identity=%s', a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attidentity) AS x
      FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = to_regclass('%1$s') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint
     WHERE conrelid = to_regclass('%1$s')
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
     WHERE indrelid = to_regclass('%1$s')
    UNION ALL
    SELECT format('partition %s %s', i.inhrelid::regclass, pg_get_expr(c.relpartbound, c.oid))
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = to_regclass('%1$s')
    UNION ALL
    SELECT format('kind %s replica identity %s', relkind, relreplident) FROM pg_class
     WHERE oid = to_regclass('%1$s')) s)sql";

class SchemaChangeE2ETest : public ::testing::Test {
 protected:
  void Start(const TwoRegionsOptions& options = {}) {
    auto started = TwoRegions::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    regions_ = std::move(*started);
    // Tables created before the slot's snapshot are copied by it, not by their DDL: start the
    // schema changes once capture streams.
    auto lsn = east().QueryValue("SELECT (pg_current_wal_lsn() - '0/0')::text");
    ASSERT_TRUE(lsn.ok() && lsn->has_value()) << lsn.status();
    const uint64_t wanted = std::stoull(**lsn);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto s = regions_->Status(Region::kEast);
      if (s.ok() && s->positions().captured_source_position() >= wanted) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "east never started capturing";
  }

  PgCluster& east() { return regions_->pg(Region::kEast); }
  PgCluster& west() { return regions_->pg(Region::kWest); }

  std::string Definition(PgCluster& pg, const std::string& table) {
    std::string sql = kDefinition;
    for (size_t at = sql.find("%1$s"); at != std::string::npos; at = sql.find("%1$s")) {
      sql.replace(at, 4, table);
    }
    auto v = pg.QueryValue(sql);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() && v->has_value() ? **v : "<error>";
  }

  // Rows and definitions equal on both clusters.
  void ExpectSame(const std::vector<std::string>& tables) {
    ASSERT_TRUE(regions_->WaitForTablesEqual(tables, absl::Seconds(90)).ok())
        << absl::StrJoin(tables, ", ");
    for (const std::string& t : tables) {
      const std::string on_east = Definition(east(), t);
      EXPECT_NE(on_east, "<missing>") << t;
      EXPECT_EQ(on_east, Definition(west(), t)) << t;
    }
  }

  // Polls the standby's status until `table` is stopped; returns its reason.
  std::string WaitForStop(const std::string& table) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto s = regions_->Status(Region::kWest);
      EXPECT_TRUE(s.ok()) << s.status();
      if (!s.ok()) return "";
      for (const auto& t : s->tables()) {
        if (t.table() == table && t.state() == "stopped") return t.reason();
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << table << " never stopped";
    return "";
  }

  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(SchemaChangeE2ETest, TablesColumnsTypesAndConstraintsChangeOnTheStandbyAsOnThePrimary) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // Created while Ferry runs: the standby runs the same CREATE TABLE (defaults, the serial's
  // sequence, a generated column, a check constraint, a foreign key).
  ASSERT_TRUE(east()
                  .Exec(R"sql(
    CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL DEFAULT 'nobody',
                           cents int CHECK (cents >= 0), doubled int GENERATED ALWAYS AS
                           (cents * 2) STORED, units int);
    CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                         account int REFERENCES accounts (id), note varchar(10));
    CREATE TABLE keyless (a int, b text);
    INSERT INTO accounts (owner, cents, units) SELECT 'o' || g, g, g FROM generate_series(1, 50) g;
    INSERT INTO ledger (account, note) SELECT g, 'n' || g FROM generate_series(1, 50) g;
    INSERT INTO keyless SELECT g, 'k' FROM generate_series(1, 5) g;
  )sql")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.accounts", "public.ledger"}));

  // Item 2: existing rows get the default on the standby too.
  ASSERT_TRUE(east().Exec("ALTER TABLE accounts ADD COLUMN tier int NOT NULL DEFAULT 7").ok());
  // Item 3: renames move the values, they do not add empty columns or tables.
  ASSERT_TRUE(east().Exec("ALTER TABLE accounts RENAME COLUMN owner TO holder").ok());
  ASSERT_TRUE(east().Exec("ALTER TABLE ledger RENAME TO journal").ok());
  // Item 4: a rewrite with USING emits no row changes; the standby rewrites the same way.
  ASSERT_TRUE(
      east().Exec("ALTER TABLE accounts ALTER COLUMN units TYPE bigint USING units * 100").ok());
  // Item 6: a key added later, a narrowed varchar, an index built concurrently, and several
  // commands in one query text mixed with DML (the DML arrives as row changes only).
  ASSERT_TRUE(east().Exec("ALTER TABLE keyless ADD PRIMARY KEY (a)").ok());
  ASSERT_TRUE(east().Exec("ALTER TABLE journal ALTER COLUMN note TYPE varchar(5)").ok());
  ASSERT_TRUE(east().Exec("CREATE INDEX CONCURRENTLY accounts_holder ON accounts (holder)").ok());
  ASSERT_TRUE(east()
                  .Exec("ALTER TABLE keyless ADD COLUMN c int DEFAULT 1; "
                        "INSERT INTO keyless (a, b) VALUES (100, 'x'); "
                        "ALTER TABLE keyless ADD COLUMN d text DEFAULT 'dee'; "
                        "UPDATE keyless SET c = 2 WHERE a = 1")
                  .ok());
  ASSERT_TRUE(east()
                  .Exec("INSERT INTO accounts (holder, cents) VALUES ('late', 3); "
                        "INSERT INTO journal (account, note) VALUES (51, 'late')")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.accounts", "public.journal", "public.keyless"}));
  auto old_name = west().QueryValue("SELECT to_regclass('public.ledger')::text");
  ASSERT_TRUE(old_name.ok());
  EXPECT_FALSE(old_name->has_value()) << "the renamed table's old name is still on the standby";

  // The standby would take the application's writes after a failover: the defaults and the
  // sequences are there (their values travel as ferry.sequences messages). Until then its
  // fence refuses them, also on tables created by replayed DDL; a superuser's write behind
  // Ferry's back shows the defaults.
  const absl::Status refused = west().Exec("INSERT INTO accounts (id, cents) VALUES (-1, 1)");
  EXPECT_NE(refused.message().find("ferry: region west is fenced"), std::string::npos) << refused;
  auto defaults = west().Query(
      "BEGIN; SET LOCAL session_replication_role = replica; "
      "INSERT INTO accounts (id, cents) VALUES (-1, 1) RETURNING holder, tier, doubled");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  ASSERT_EQ(defaults->size(), 1u);
  EXPECT_EQ((*defaults)[0], (Row{"nobody", "7", "2"}));
  auto sequences = west().QueryValue(
      "SELECT count(*) FROM pg_sequences WHERE sequencename IN ('accounts_id_seq', "
      "'ledger_id_seq')");
  ASSERT_TRUE(sequences.ok()) << sequences.status();
  EXPECT_EQ(sequences->value_or(""), "2");

  // A new enum value is used by the very next transaction: the standby applies the ALTER TYPE
  // in a transaction of its own (Postgres refuses a value added in the same transaction).
  ASSERT_TRUE(east()
                  .Exec("CREATE TYPE mood AS ENUM ('calm'); "
                        "ALTER TABLE accounts ADD COLUMN mood mood DEFAULT 'calm'")
                  .ok());
  ASSERT_TRUE(east().Exec("ALTER TYPE mood ADD VALUE 'glad'").ok());
  ASSERT_TRUE(east().Exec("UPDATE accounts SET mood = 'glad' WHERE id <= 3").ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.accounts"}));

  ASSERT_TRUE(east().Exec("DROP TABLE journal").ok());
  ASSERT_TRUE(east().Exec("INSERT INTO accounts (holder, cents) VALUES ('after drop', 1)").ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.accounts"}));
  auto dropped = west().QueryValue("SELECT to_regclass('public.journal')::text");
  ASSERT_TRUE(dropped.ok());
  EXPECT_FALSE(dropped->has_value());
  auto status = regions_->Status(Region::kWest);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(StoppedTables(*status).empty()) << status->DebugString();
}

TEST_F(SchemaChangeE2ETest, PartitionsFollowTruncateDetachDropAndAttach) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(east()
                  .Exec(R"sql(
    CREATE TABLE events (id int, region text, body text, PRIMARY KEY (id, region))
      PARTITION BY LIST (region);
    CREATE TABLE events_east PARTITION OF events FOR VALUES IN ('east');
    CREATE TABLE events_west PARTITION OF events FOR VALUES IN ('west');
    CREATE TABLE events_north PARTITION OF events FOR VALUES IN ('north');
    CREATE TABLE events_south PARTITION OF events FOR VALUES IN ('south');
    INSERT INTO events SELECT g, r, 'b' FROM generate_series(1, 20) g,
      unnest(ARRAY['east', 'west', 'north', 'south']) r;
  )sql")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.events"}));

  // Item 5: none of these reach a subscriber of a publish_via_partition_root publication.
  ASSERT_TRUE(east().Exec("TRUNCATE events_east").ok());
  ASSERT_TRUE(east().Exec("ALTER TABLE events DETACH PARTITION events_west").ok());
  ASSERT_TRUE(east().Exec("DROP TABLE events_north").ok());
  // Attaching a filled table: its rows were replicated as its own; the standby attaches too.
  ASSERT_TRUE(east()
                  .Exec(R"sql(
    CREATE TABLE events_up (id int NOT NULL, region text NOT NULL, body text,
                            PRIMARY KEY (id, region));
    INSERT INTO events_up SELECT g, 'up', 'u' FROM generate_series(1, 10) g;
    ALTER TABLE events ATTACH PARTITION events_up FOR VALUES IN ('up');
  )sql")
                  .ok());
  ASSERT_TRUE(east()
                  .Exec("UPDATE events SET body = 'changed' WHERE region IN ('up', 'south'); "
                        "INSERT INTO events_west VALUES (99, 'west', 'detached')")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame(
      {"public.events", "public.events_west", "public.events_up", "public.events_east"}));
  auto status = regions_->Status(Region::kWest);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(StoppedTables(*status).empty()) << status->DebugString();
}

TEST_F(SchemaChangeE2ETest, DdlFerryCannotIsolateStopsItsTableAndForgedMessagesDoNothing) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(east()
                  .Exec(R"sql(
    CREATE TABLE hidden (id int PRIMARY KEY, v int);
    CREATE TABLE victim (id int PRIMARY KEY);
    CREATE TABLE other (id int PRIMARY KEY);
    INSERT INTO hidden SELECT g, g FROM generate_series(1, 10) g;
    INSERT INTO victim SELECT g FROM generate_series(1, 10) g;
    CREATE ROLE app LOGIN;
    GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
  )sql")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.hidden", "public.victim"}));

  // Any role may emit a message with Ferry's prefix; unsigned, it is never replayed.
  ASSERT_TRUE(east()
                  .Exec("SET ROLE app; SELECT pg_logical_emit_message(true, 'ferry.ddl', "
                        "'{\"v\":1,\"tag\":\"DROP TABLE\",\"ordinal\":1,\"query\":\"DROP TABLE "
                        "victim\",\"role\":\"postgres\",\"tables\":[]}'); "
                        "SELECT pg_logical_emit_message(true, 'ferry.ddl', '" +
                        std::string(64, 'a') +
                        " {\"v\":1,\"tag\":\"DROP TABLE\",\"ordinal\":1,\"query\":\"DROP TABLE "
                        "victim\",\"role\":\"postgres\",\"tables\":[]}'); "
                        "INSERT INTO victim VALUES (11)")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.victim"}));

  // A DDL command inside a DO block cannot be told apart from the block's other statements.
  ASSERT_TRUE(east()
                  .Exec("DO $$ BEGIN EXECUTE 'ALTER TABLE hidden ADD COLUMN extra int DEFAULT 3'; "
                        "END $$")
                  .ok());
  ASSERT_TRUE(
      east().Exec("INSERT INTO hidden VALUES (11, 11, 11); INSERT INTO other VALUES (1)").ok());
  const std::string reason = WaitForStop("public.hidden");
  EXPECT_NE(reason.find("DO block"), std::string::npos) << reason;
  EXPECT_NE(reason.find("ALTER TABLE"), std::string::npos) << reason;
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.other", "public.victim"}));

  // The operator makes the standby's table match by hand and resumes it: every change from the
  // one that stopped it applies.
  ASSERT_TRUE(east().Exec("UPDATE hidden SET extra = 4 WHERE id = 1").ok());
  ASSERT_TRUE(west().Exec("ALTER TABLE hidden ADD COLUMN extra int DEFAULT 3").ok());
  auto resumed = regions_->Ctl(Region::kWest, {"resume-table", "public.hidden"});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->exit_code, 0) << resumed->output;
  ASSERT_NO_FATAL_FAILURE(ExpectSame({"public.hidden", "public.other", "public.victim"}));
}

TEST_F(SchemaChangeE2ETest, TablesThatExistedBeforeFerryArriveWithTheirWholeDefinition) {
  // Copied by the initial snapshot, not created by DDL while Ferry runs: item 6 of #14.
  ASSERT_NO_FATAL_FAILURE(Start({.schema_sql = R"sql(
    CREATE TYPE mood AS ENUM ('sad', 'happy');
    CREATE TABLE owners (id serial PRIMARY KEY, name text NOT NULL DEFAULT 'anon' UNIQUE,
                         feeling mood DEFAULT 'happy', code varchar(5) COLLATE "C",
                         CHECK (length(name) < 100));
    CREATE TABLE pets (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                       owner int NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
                       legs int DEFAULT 4, paws int GENERATED ALWAYS AS (legs) STORED);
    CREATE INDEX pets_legs ON pets (legs) WHERE legs > 2;
    CREATE TABLE visits (at date NOT NULL, pet bigint, PRIMARY KEY (at, pet))
      PARTITION BY RANGE (at);
    CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    CREATE INDEX visits_pet ON visits (pet);
    CREATE TABLE plain_log (line text);
    ALTER TABLE plain_log REPLICA IDENTITY FULL;
    INSERT INTO owners (name, code) SELECT 'o' || g, 'c' FROM generate_series(1, 30) g;
    INSERT INTO pets (owner) SELECT g FROM generate_series(1, 30) g;
    INSERT INTO visits VALUES ('2026-03-01', 1), ('2026-04-01', 2);
    INSERT INTO plain_log VALUES ('a'), ('b');
  )sql",
                                 .standby_sql = "CREATE TYPE mood AS ENUM ('sad', 'happy');"}));
  ASSERT_TRUE(east()
                  .Exec("INSERT INTO owners (name) VALUES ('later'); "
                        "INSERT INTO pets (owner, legs) VALUES (31, 3)")
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectSame(
      {"public.owners", "public.pets", "public.visits", "public.visits_2026", "public.plain_log"}));
  auto status = regions_->Status(Region::kWest);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(StoppedTables(*status).empty()) << status->DebugString();
}

}  // namespace
}  // namespace ferry::testing
