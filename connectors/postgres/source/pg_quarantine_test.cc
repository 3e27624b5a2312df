// PostgresQuarantine against a real Postgres 15: keeping changes with both rows, idempotently
// and all or nothing; hostile changes from the peer (unknown tables, quoted names, keys that try
// to be SQL, malformed JSON, unknown ops) refused with nothing kept; the operator's verbs, each
// kind of reapply conflict writing nothing, and decisions recorded once.
#include "connectors/postgres/source/pg_quarantine.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/pg_database_test.h"

namespace ferry::pg {
namespace {

using ::ferry::testing::PgDatabaseTest;

v1::QuarantinedChange Change(uint64_t seq, uint32_t index, const std::string& table,
                             const std::string& op, const std::string& key,
                             const std::string& after = "", uint32_t xid = 700) {
  v1::QuarantinedChange c;
  c.set_epoch(1);
  c.set_log_seq(seq);
  c.set_index(index);
  c.set_source_xid(xid);
  c.set_commit_position(0x16B374D848ULL + seq);
  c.set_commit_time_us(1'700'000'000'000'000LL);
  const size_t dot = table.find('.');
  c.set_table_schema(table.substr(0, dot));
  c.set_table_name(table.substr(dot + 1));
  c.set_op(op);
  c.set_key(key);
  c.set_after(after);
  return c;
}

class PgQuarantineTest : public PgDatabaseTest<PgQuarantineTest> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PgDatabaseTest::SetUp());
    ASSERT_TRUE(Exec("CREATE TABLE items (id bigint PRIMARY KEY, v text);"
                     "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');"
                     "CREATE TABLE \"Odd \"\"Name\"\"\" (\"K ey\" int PRIMARY KEY, v text);"
                     "INSERT INTO \"Odd \"\"Name\"\"\" VALUES (5, 'five');"
                     "CREATE TABLE scratch (id int PRIMARY KEY); INSERT INTO scratch VALUES (1);")
                    .ok());
    store_ = std::make_unique<PostgresQuarantine>(dsn());
  }
  std::string Value(const std::string& sql) {
    auto v = cluster_->QueryValue(sql, db_);
    return v.ok() ? v->value_or("<null>") : absl::StrCat("<error ", v.status().ToString(), ">");
  }
  absl::StatusOr<v1::QuarantineReply> Decide(const std::string& verb, int64_t id,
                                             const std::string& note = "") {
    v1::QuarantineRequest r;
    r.set_verb(verb);
    r.set_id(id);
    r.set_note(note);
    return store_->Decide(r);
  }

  std::unique_ptr<PostgresQuarantine> store_;
};

TEST_F(PgQuarantineTest, KeepsEachChangeOnceWithTheRowsOfBothRegions) {
  const std::vector<v1::QuarantinedChange> changes = {
      Change(10, 0, "public.items", "update", R"({"id": "2"})", R"({"id": "2", "v": "east"})"),
      Change(10, 1, "public.items", "delete", R"({"id": "9"})"),
      Change(11, 0, "public.Odd \"Name\"", "insert", R"({"K ey": "5"})",
             R"({"K ey": "5", "v": "east"})", 701),
      Change(12, 0, "public.scratch", "truncate", "", "", 702)};
  auto rows = store_->CurrentRows(changes);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0], std::optional<std::string>(R"({"id": "2", "v": "two"})"));
  EXPECT_EQ((*rows)[1], std::nullopt);  // no such row
  EXPECT_EQ((*rows)[2], std::optional<std::string>(R"({"K ey": "5", "v": "five"})"));
  EXPECT_EQ((*rows)[3], std::nullopt);  // a truncate has no key

  auto kept = store_->Keep("east", changes);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 4u);
  EXPECT_EQ(kept->present, 0u);
  auto again = store_->Keep("east", changes);  // a rejoin that runs again
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kept, 0u);
  EXPECT_EQ(again->present, 4u);
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.quarantine"), "4");
  EXPECT_EQ(Value("SELECT current_row FROM ferry.quarantine WHERE log_seq = 10 AND "
                  "change_index = 0"),
            R"({"id": "2", "v": "two"})");
  EXPECT_EQ(Value("SELECT commit_position || ' ' || xact || ' ' || status FROM "
                  "ferry.quarantine WHERE log_seq = 12"),
            "16/B374D854 702 pending");
  auto pending = store_->Pending();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, 4u);
}

// The peer's changes are input from outside: a malformed one refuses the whole batch, nothing
// kept; one naming a table or column this region does not have (a schema change on either side)
// is kept with its row here unknown and the reason noted, never dropped, and never runs as SQL.
TEST_F(PgQuarantineTest, HostileChangesAreRefusedAndNothingOfTheirBatchIsKept) {
  const v1::QuarantinedChange good =
      Change(1, 0, "public.items", "update", R"({"id": "1"})", R"({"id": "1", "v": "x"})");
  const std::vector<v1::QuarantinedChange> malformed = {
      Change(2, 0, "public.items", "upsert", R"({"id": "1"})"),
      Change(2, 0, "public.items", "update", "not json"),
      Change(2, 0, "public.items", "update", R"(["id", 1])"),
      Change(2, 0, "public.items", "update", R"({"id": "1"})", R"({"id": 1,)"),
      Change(2, 0, "public.items", "update", R"({"id": "1"})", R"("a string")"),
      Change(2, 0, std::string("public.") + std::string(300, 'x'), "insert", R"({"id": "1"})"),
      Change(2, 0, ".items", "insert", R"({"id": "1"})"),
  };
  for (const v1::QuarantinedChange& bad : malformed) {
    auto kept = store_->Keep("east", {good, bad});
    EXPECT_EQ(kept.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.table_name() << " " << bad.op() << " " << bad.key() << ": " << kept.status();
    EXPECT_EQ(store_->CurrentRows({bad}).status().code(), absl::StatusCode::kInvalidArgument)
        << bad.key();
  }
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.quarantine"), "0");
  EXPECT_EQ(store_->Keep("", {good}).status().code(), absl::StatusCode::kInvalidArgument);

  const std::vector<v1::QuarantinedChange> diverged = {
      Change(3, 0, "public.nosuch", "insert", R"({"id": "1"})"),
      Change(3, 1, "public.items", "update", R"({"nosuchcolumn": "1"})"),
      Change(3, 2, "public.items", "update", R"({"id": "1); DROP TABLE items; --"})"),
      Change(3, 3, "public.items\"; DROP TABLE items; --", "insert", R"({"id": "1"})"),
  };
  auto rows = store_->CurrentRows(diverged);
  ASSERT_TRUE(rows.ok()) << rows.status();
  for (const auto& row : *rows) EXPECT_EQ(row, std::nullopt);
  auto kept = store_->Keep("east", diverged);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 4u);
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.quarantine WHERE current_row IS NULL AND note LIKE "
                  "'this region''s row could not be read when kept: %'"),
            "4");
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "3");
}

TEST_F(PgQuarantineTest, ReapplyWritesTheTransactionOrRefusesNamingTheConflict) {
  // Transaction 800: an insert of 4 and an update of 2; 801: a delete of 3; 802: an insert of
  // 1 (exists); 803: an update of 9 (missing); 804: a truncate.
  const std::vector<v1::QuarantinedChange> changes = {
      Change(20, 0, "public.items", "insert", R"({"id": "4"})", R"({"id": "4", "v": "four"})", 800),
      Change(20, 1, "public.items", "update", R"({"id": "2"})", R"({"id": "2", "v": "east"})", 800),
      Change(21, 0, "public.items", "delete", R"({"id": "3"})", "", 801),
      Change(22, 0, "public.items", "insert", R"({"id": "1"})", R"({"id": "1", "v": "x"})", 802),
      Change(23, 0, "public.items", "update", R"({"id": "9"})", R"({"id": "9", "v": "x"})", 803),
      Change(24, 0, "public.scratch", "truncate", "", "", 804)};
  ASSERT_TRUE(store_->Keep("east", changes).ok());
  auto id_of = [&](uint64_t seq, uint32_t index) {
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(Value(absl::StrCat("SELECT id FROM ferry.quarantine WHERE "
                                                    "log_seq = ",
                                                    seq, " AND change_index = ", index)),
                                 &id));
    return id;
  };

  // The primary changed row 2 since the rejoin recorded it: refused, the insert of 4 undone.
  ASSERT_TRUE(Exec("UPDATE items SET v = 'changed' WHERE id = 2").ok());
  auto refused = Decide("reapply", id_of(20, 0));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("changed since the rejoin kept it"), std::string::npos)
      << refused.status();
  EXPECT_EQ(Value("SELECT count(*) FROM items WHERE id = 4"), "0");
  ASSERT_TRUE(Exec("UPDATE items SET v = 'two' WHERE id = 2").ok());
  auto reapplied = Decide("reapply", id_of(20, 1), "checked with the customer");
  ASSERT_TRUE(reapplied.ok()) << reapplied.status();
  EXPECT_EQ(reapplied->decided(), 2u);
  EXPECT_EQ(reapplied->entries_size(), 2);  // the whole source transaction
  EXPECT_EQ(Value("SELECT string_agg(v, ',' ORDER BY id) FROM items"), "one,east,three,four");
  EXPECT_EQ(Value("SELECT note FROM ferry.quarantine WHERE log_seq = 20 AND change_index = 0"),
            "checked with the customer");
  EXPECT_EQ(Decide("reapply", id_of(20, 0)).status().code(),
            absl::StatusCode::kFailedPrecondition);  // decided once

  auto deleted = Decide("reapply", id_of(21, 0));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(Value("SELECT count(*) FROM items WHERE id = 3"), "0");
  auto exists = Decide("reapply", id_of(22, 0));
  EXPECT_NE(exists.status().message().find("a row with this key exists"), std::string::npos)
      << exists.status();
  auto missing = Decide("reapply", id_of(23, 0));
  EXPECT_NE(missing.status().message().find("no row with this key"), std::string::npos)
      << missing.status();
  // A truncate would erase what the primary holds now: never reapplied, only discarded.
  auto truncated = Decide("reapply", id_of(24, 0));
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(truncated.status().message().find("never reapplied"), std::string::npos)
      << truncated.status();
  EXPECT_EQ(Value("SELECT count(*) FROM scratch"), "1");
  ASSERT_TRUE(Decide("discard", id_of(24, 0)).ok());
  auto discarded = Decide("discard", id_of(23, 0), "stale");
  ASSERT_TRUE(discarded.ok()) << discarded.status();
  EXPECT_EQ(Value("SELECT status || ' ' || note || ' ' || (decided_at IS NOT NULL) FROM "
                  "ferry.quarantine WHERE log_seq = 23"),
            "discarded stale true");

  v1::QuarantineRequest list;
  list.set_verb("list");
  list.set_status("pending");
  auto listed = store_->Decide(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->total(), 1u);  // the insert of 1
  EXPECT_EQ(listed->pending(), 1u);
  ASSERT_EQ(listed->entries_size(), 1);
  EXPECT_EQ(listed->entries(0).xact(), "802");
  auto shown = Decide("show", id_of(22, 0));
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->entries(0).current_row(), R"({"id": "1", "v": "one"})");
}

// A rejoin explains a differing key with a pending kept change of the caller's region to it:
// its key (in any column order), the new key of an update that moved its row, or a truncate of
// its table; a decided entry or another region's explains nothing.
TEST_F(PgQuarantineTest, ExplainsADifferingKeyOnlyWithAPendingChangeOfTheRegion) {
  ASSERT_TRUE(
      store_
          ->Keep("east", {Change(30, 0, "public.items", "update", R"({"id": "1"})",
                                 R"({"id": "1", "v": "x"})", 900),
                          Change(31, 0, "public.items", "update", R"({"id": "2"})",
                                 R"({"id": "7", "v": "moved"})", 901),
                          Change(32, 0, "public.items", "delete", R"({"id": "3"})", "", 902),
                          Change(33, 0, "public.scratch", "truncate", "", "", 903)})
          .ok());
  ASSERT_TRUE(
      store_->Keep("north", {Change(40, 0, "public.items", "delete", R"({"id": "9"})")}).ok());
  ASSERT_TRUE(Exec("UPDATE ferry.quarantine SET status = 'discarded' WHERE xact = '902'").ok());
  auto key = [](const std::string& table, const std::string& k) {
    return Change(0, 0, table, "update", k);
  };
  auto explained = store_->Explains(
      "east", {key("public.items", R"({"id":"1"})"), key("public.items", R"({"id": "2"})"),
               key("public.items", R"({"id": "7"})"), key("public.items", R"({"id": "3"})"),
               key("public.items", R"({"id": "9"})"), key("public.items", R"({"id": "4"})"),
               key("public.scratch", R"({"id": "12"})")});
  ASSERT_TRUE(explained.ok()) << explained.status();
  EXPECT_EQ(*explained, (std::vector<bool>{true, true, true, false, false, false, true}));
}

TEST_F(PgQuarantineTest, MalformedRequestsAreRefused) {
  EXPECT_EQ(Decide("drop", 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide("show", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide("reapply", -4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Decide("show", 12345).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Decide("discard", 1, std::string(5000, 'n')).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::QuarantineRequest list;
  list.set_verb("list");
  list.set_status("pending'; DROP TABLE items; --");
  EXPECT_EQ(store_->Decide(list).status().code(), absl::StatusCode::kInvalidArgument);
  list.set_status("");
  list.set_limit(1'000'000);
  EXPECT_EQ(store_->Decide(list).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Value("SELECT count(*) FROM items"), "3");
}

}  // namespace
}  // namespace ferry::pg

namespace ferry::pg {
namespace {

// A bucket's object entries (connectors/s3/kept_object.h): kept without a row (a real table of
// the same name is not read), each its own transaction, never reapplied, never explaining a
// row's key; malformed ones refused with the batch.
TEST_F(PgQuarantineTest, ObjectEntriesAreKeptAloneAndNeverReapplied) {
  ASSERT_TRUE(Exec("CREATE SCHEMA s3; CREATE TABLE s3.\"east-assets\" (key text PRIMARY KEY); "
                   "INSERT INTO s3.\"east-assets\" VALUES ('a')")
                  .ok());
  const std::string after = R"({"version_id": "v1", "size": "3", "etag": "e", "content_type": ""})";
  std::vector<v1::QuarantinedChange> objects = {
      Change(20, 0, "s3.east-assets", "object_put", R"({"key": "a"})", after, 0),
      Change(21, 0, "s3.east-assets", "object_delete", R"({"key": "b"})", R"({"version_id": ""})",
             0)};
  auto rows = store_->CurrentRows(objects);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)[0], std::nullopt);  // the table's row for 'a' is not an object's
  auto kept = store_->Keep("east", objects);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 2u);
  EXPECT_EQ(store_->Keep("east", objects)->present, 2u);
  EXPECT_EQ(
      Value("SELECT string_agg(xact || ' ' || commit_position || ' ' || coalesce(current_row, "
            "'-') || ' ' || coalesce(note, '-'), ', ' ORDER BY id) FROM ferry.quarantine"),
      "object seq 20 - -, object seq 21 - -");
  const std::string id = Value("SELECT min(id) FROM ferry.quarantine");
  auto reapply = Decide("reapply", std::stoll(id));
  EXPECT_EQ(reapply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reapply.status().message().find("not reapplied by Ferry"), std::string::npos)
      << reapply.status();
  auto discarded = Decide("discard", std::stoll(id));
  ASSERT_TRUE(discarded.ok()) << discarded.status();
  EXPECT_EQ(discarded->decided(), 1u);  // alone: not with the other object entry
  v1::QuarantinedChange key = Change(0, 0, "s3.east-assets", "update", R"({"key": "b"})");
  auto explained = store_->Explains("east", {key});
  ASSERT_TRUE(explained.ok()) << explained.status();
  EXPECT_EQ(*explained, std::vector<bool>{false});
  v1::QuarantinedChange not_json =
      Change(22, 0, "s3.east-assets", "object_put", R"("a")", after, 0);
  EXPECT_EQ(store_->Keep("east", {objects[0], not_json}).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::QuarantinedChange bad_op = Change(23, 0, "s3.east-assets", "object_move", R"({"key": "a"})");
  EXPECT_EQ(store_->Keep("east", {bad_op}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Value("SELECT count(*) FROM ferry.quarantine"), "2");
}

}  // namespace
}  // namespace ferry::pg
