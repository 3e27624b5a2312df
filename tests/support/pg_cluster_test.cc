#include "tests/support/pg_cluster.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace ferry::testing {
namespace {

TEST(PgClusterTest, StartsAndRunsSql) {
  auto pg = PgCluster::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  PgCluster& cluster = **pg;
  EXPECT_TRUE(cluster.running());
  EXPECT_GT(cluster.port(), 0);
  EXPECT_TRUE(std::filesystem::exists(cluster.log_path()));

  ASSERT_TRUE(cluster
                  .Exec("CREATE TABLE t (id int PRIMARY KEY, name text);"
                        "INSERT INTO t VALUES (1, 'one'), (2, NULL);")
                  .ok());
  auto rows = cluster.Query("SELECT id, name FROM t ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0], (Row{"1", "one"}));
  EXPECT_EQ((*rows)[1], (Row{"2", std::nullopt}));

  auto db = cluster.QueryValue("SELECT current_database()");
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*db, "app");
  auto level = cluster.QueryValue("SHOW wal_level", "postgres");
  ASSERT_TRUE(level.ok()) << level.status();
  EXPECT_EQ(*level, "logical");

  absl::Status bad = cluster.Exec("SELECT * FROM no_such_table");
  EXPECT_EQ(bad.code(), absl::StatusCode::kNotFound) << bad;
  EXPECT_NE(bad.message().find("no_such_table"), std::string::npos) << bad;
  EXPECT_EQ(cluster.Exec("INSERT INTO t VALUES (1, 'dup')").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(cluster.QueryValue("SELECT id FROM t").ok());  // two rows
}

TEST(PgClusterTest, CreatesLogicalSlotWithPgoutput) {
  auto pg = PgCluster::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE(
      (*pg)->Exec("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES").ok());
  auto slot = (*pg)->Query(
      "SELECT slot_name, lsn FROM "
      "pg_create_logical_replication_slot('ferry_slot', 'pgoutput')");
  ASSERT_TRUE(slot.ok()) << slot.status();
  ASSERT_EQ(slot->size(), 1u);
  EXPECT_EQ((*slot)[0][0], "ferry_slot");
  auto plugin =
      (*pg)->QueryValue("SELECT plugin FROM pg_replication_slots WHERE slot_name = 'ferry_slot'");
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(*plugin, "pgoutput");
  ASSERT_TRUE((*pg)->Exec("INSERT INTO t VALUES (7)").ok());
  // The slot decodes the insert through pgoutput.
  auto changes = (*pg)->QueryValue(
      "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('ferry_slot', NULL, NULL, "
      "'proto_version', '1', 'publication_names', 'p')");
  ASSERT_TRUE(changes.ok()) << changes.status();
  EXPECT_GE(std::stoi(changes->value()), 3);  // BEGIN, (RELATION,) INSERT, COMMIT
}

TEST(PgClusterTest, RestartKeepsDataAndPort) {
  auto pg = PgCluster::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  PgCluster& cluster = **pg;
  const int port = cluster.port();
  ASSERT_TRUE(cluster.Exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)").ok());

  ASSERT_TRUE(cluster.Restart(PgCluster::StopMode::kFast).ok());
  EXPECT_EQ(cluster.port(), port);
  EXPECT_EQ(cluster.QueryValue("SELECT count(*) FROM t").value_or("?"), "2");

  ASSERT_TRUE(cluster.Exec("INSERT INTO t VALUES (3)").ok());
  ASSERT_TRUE(cluster.Restart(PgCluster::StopMode::kImmediate).ok());  // crash + recovery
  EXPECT_EQ(cluster.QueryValue("SELECT count(*) FROM t").value_or("?"), "3");
}

TEST(PgClusterTest, StopRefusesConnectionsUntilStartAgain) {
  auto pg = PgCluster::Start();
  ASSERT_TRUE(pg.ok()) << pg.status();
  ASSERT_TRUE((*pg)->Stop().ok());
  EXPECT_FALSE((*pg)->running());
  EXPECT_TRUE((*pg)->Stop().ok());  // stopping a stopped cluster is fine
  EXPECT_EQ((*pg)->Exec("SELECT 1").code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*pg)->StartAgain().ok());
  EXPECT_TRUE((*pg)->running());
  EXPECT_TRUE((*pg)->Exec("SELECT 1").ok());
}

TEST(PgClusterTest, TwoClustersRunAtOnce) {
  auto a = PgCluster::Start();
  ASSERT_TRUE(a.ok()) << a.status();
  PgClusterOptions options;
  options.database = "other";
  options.extra_config = {"application_name = 'second'"};
  auto b = PgCluster::Start(options);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->port(), (*b)->port());
  EXPECT_NE((*a)->dir(), (*b)->dir());
  ASSERT_TRUE((*a)->Exec("CREATE TABLE only_in_a (id int)").ok());
  EXPECT_TRUE((*a)->Exec("SELECT * FROM only_in_a").ok());
  EXPECT_EQ((*b)->Exec("SELECT * FROM only_in_a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*b)->QueryValue("SELECT current_database()").value_or("?"), "other");
}

TEST(PgClusterTest, DestructorRemovesTheDirectory) {
  std::string dir;
  {
    auto pg = PgCluster::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    dir = (*pg)->dir();
    EXPECT_TRUE(std::filesystem::exists(dir));
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PgClusterTest, StartsAsACopyOfAStoppedTemplateInTheParentDirectory) {
  TempDir parent("ferry-pg-copy-test");
  ASSERT_EQ(::chmod(parent.path().c_str(), 0755), 0);  // the postgres OS user enters it
  PgClusterOptions options;
  options.parent_dir = parent.path();
  options.extra_config = {"application_name = 'template'"};
  auto tpl = PgCluster::Start(options);
  ASSERT_TRUE(tpl.ok()) << tpl.status();
  EXPECT_TRUE(absl::StartsWith((*tpl)->dir(), parent.path() + "/ferry-pg-")) << (*tpl)->dir();
  ASSERT_TRUE((*tpl)->Exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)").ok());

  PgClusterOptions copy_options;
  copy_options.parent_dir = parent.path();
  copy_options.template_data_dir = (*tpl)->data_dir();
  copy_options.extra_config = {"application_name = 'copy'"};
  // A running template would be copied torn: refused.
  EXPECT_EQ(PgCluster::Start(copy_options).status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE((*tpl)->Stop().ok());
  auto a = PgCluster::Start(copy_options);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = PgCluster::Start(copy_options);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->port(), (*b)->port());
  EXPECT_TRUE(absl::StartsWith((*a)->dir(), parent.path() + "/ferry-pg-")) << (*a)->dir();
  // The template's data, in the database it created; the copy's own settings on top.
  EXPECT_EQ((*a)->QueryValue("SELECT count(*) FROM t").value_or("?"), "2");
  EXPECT_EQ((*a)->QueryValue("SHOW application_name").value_or("?"), "copy");
  EXPECT_EQ((*a)->QueryValue("SHOW unix_socket_directories").value_or("?"), (*a)->dir());
  // Each copy is its own cluster, and the template is untouched.
  ASSERT_TRUE((*a)->Exec("INSERT INTO t VALUES (3)").ok());
  EXPECT_EQ((*b)->QueryValue("SELECT count(*) FROM t").value_or("?"), "2");
  ASSERT_TRUE((*tpl)->StartAgain().ok());
  EXPECT_EQ((*tpl)->QueryValue("SELECT count(*) FROM t").value_or("?"), "2");
}

// Keep() leaves the data directory, but the server is still stopped at destruction.
TEST(PgClusterTest, KeepLeavesTheDirectoryOfAStoppedServer) {
  std::string dir;
  {
    auto pg = PgCluster::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    dir = (*pg)->dir();
    (*pg)->Keep();
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/data/PG_VERSION"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/data/postmaster.pid"));  // a clean stop
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::testing
