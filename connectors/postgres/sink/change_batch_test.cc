#include "connectors/postgres/sink/change_batch.h"

#include <gtest/gtest.h>

#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/testing/transaction_builders.h"

namespace ferry::pg_sink {
namespace {

using sink_test::Col;
using sink_test::Delete;
using sink_test::Insert;
using sink_test::kToast;
using sink_test::Update;

std::vector<std::string> TypesOf(const v1::Relation& r) {
  std::vector<std::string> out;
  for (const auto& c : r.columns()) out.push_back(c.type_name());
  return out;
}

class ChangeBatchTest : public ::testing::Test {
 protected:
  v1::Relation accounts_ = sink_test::Relation(
      1, "public", "accounts", {{"id", "integer", true}, {"balance", "integer"}, {"doc", "text"}});
  v1::Relation history_ =
      sink_test::Relation(2, "public", "history", {{"id", "integer"}, {"note", "text"}});
  // Changes must outlive the batch: keep them here.
  std::deque<v1::Change> changes_;
  ChangeBatch batch_;

  ChangeBatch::AddResult Add(const v1::Relation& r, v1::Change c) {
    changes_.push_back(std::move(c));
    return batch_.Add(r, changes_.back());
  }
};

TEST_F(ChangeBatchTest, UpdatesOfOneRowBecomeOneRowWithTheLatestValues) {
  ASSERT_EQ(Add(accounts_, Update(1, {"1", "10", "a"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"2", "20", "b"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"1", "11", "c"})), ChangeBatch::kAdded);
  EXPECT_EQ(batch_.rows(), 2u);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  const auto& s = statements[0];
  EXPECT_EQ(s.what(), std::string("UPDATE"));
  EXPECT_EQ(s.expect_rows, 2);
  EXPECT_EQ(s.Sql(TypesOf(accounts_)),
            "UPDATE \"public\".\"accounts\" AS t SET \"balance\" = v.\"p2\", \"doc\" = v.\"p3\" "
            "FROM unnest($1::integer[], $2::integer[], $3::text[]) AS v(\"p1\", \"p2\", \"p3\") "
            "WHERE t.\"id\" = v.\"p1\"");
  EXPECT_EQ(s.params,
            (std::vector<std::string>{"{\"1\",\"2\"}", "{\"11\",\"20\"}", "{\"c\",\"b\"}"}));
  EXPECT_TRUE(batch_.empty());
}

TEST_F(ChangeBatchTest, InsertThenUpdatesIsOneInsertOfTheMergedRow) {
  ASSERT_EQ(Add(accounts_, Insert(1, {"7", "0", "first"})), ChangeBatch::kAdded);
  // The update leaves doc as unchanged TOAST: the inserted value stays.
  ASSERT_EQ(Add(accounts_, Update(1, {"7", "5", kToast})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].what(), std::string("INSERT"));
  EXPECT_EQ(statements[0].Sql(TypesOf(accounts_)),
            "INSERT INTO \"public\".\"accounts\" (\"id\", \"balance\", \"doc\") OVERRIDING SYSTEM "
            "VALUE SELECT * FROM "
            "unnest($1::integer[], $2::integer[], $3::text[]) AS v(\"p1\", \"p2\", \"p3\") ON "
            "CONFLICT DO NOTHING");
  EXPECT_EQ(statements[0].params, (std::vector<std::string>{"{\"7\"}", "{\"5\"}", "{\"first\"}"}));
}

TEST_F(ChangeBatchTest, UpdateThenDeleteIsADeleteThatMustFindTheRow) {
  ASSERT_EQ(Add(accounts_, Update(1, {"3", "1", "x"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Delete(1, {"3", std::nullopt, std::nullopt})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].what(), std::string("DELETE"));
  EXPECT_EQ(statements[0].expect_rows, 1);
  EXPECT_EQ(statements[0].Sql(TypesOf(accounts_)),
            "DELETE FROM \"public\".\"accounts\" AS t USING unnest($1::integer[]) AS v(\"p1\") "
            "WHERE t.\"id\" = v.\"p1\"");
  EXPECT_EQ(statements[0].params, (std::vector<std::string>{"{\"3\"}"}));
}

TEST_F(ChangeBatchTest, OrderThatMattersFlushesFirst) {
  ASSERT_EQ(Add(accounts_, Insert(1, {"4", "0", "a"})), ChangeBatch::kAdded);
  // Insert then delete of one row, and delete then insert: the order must be kept.
  EXPECT_EQ(Add(accounts_, Delete(1, {"4", std::nullopt, std::nullopt})), ChangeBatch::kFlushFirst);
  EXPECT_EQ(batch_.rows(), 1u);  // refused changes leave the batch as it was
  batch_.Take();
  EXPECT_EQ(Add(accounts_, Delete(1, {"4", std::nullopt, std::nullopt})), ChangeBatch::kAdded);
  EXPECT_EQ(Add(accounts_, Insert(1, {"4", "1", "b"})), ChangeBatch::kFlushFirst);
  // A changed shape of the same table (a column added on the source) waits too.
  v1::Relation wider = sink_test::Relation(
      1, "public", "accounts",
      {{"id", "integer", true}, {"balance", "integer"}, {"doc", "text"}, {"extra", "text"}});
  EXPECT_EQ(Add(wider, Insert(1, {"9", "0", "a", "e"})), ChangeBatch::kFlushFirst);
}

TEST_F(ChangeBatchTest, ChangesThatNeedTheirOwnStatementAreRefused) {
  // The key changes.
  EXPECT_EQ(Add(accounts_, Update(1, {"2", "0", "a"}, sink_test::Values{"1", "0", "a"})),
            ChangeBatch::kNotBatchable);
  // REPLICA IDENTITY FULL: updates and deletes match on every old value.
  v1::Relation full = sink_test::Relation(3, "public", "full", {{"a", "integer"}, {"b", "text"}},
                                          v1::REPLICA_IDENTITY_FULL);
  EXPECT_EQ(Add(full, Update(3, {"1", "y"}, sink_test::Values{"1", "x"})),
            ChangeBatch::kNotBatchable);
  EXPECT_EQ(Add(full, Delete(3, {"1", "x"}, false)), ChangeBatch::kNotBatchable);
  // Keyless tables: inserts only.
  EXPECT_EQ(Add(history_, Update(2, {"1", "x"})), ChangeBatch::kNotBatchable);
  // A key value that is unchanged TOAST cannot name a row.
  EXPECT_EQ(Add(accounts_, Update(1, {kToast, "1", "a"})), ChangeBatch::kNotBatchable);
  EXPECT_TRUE(batch_.empty());
}

TEST_F(ChangeBatchTest, FullIdentityInsertsAreAppended) {
  v1::Relation full = sink_test::Relation(3, "public", "full", {{"a", "integer"}, {"b", "text"}},
                                          v1::REPLICA_IDENTITY_FULL);
  ASSERT_EQ(Add(full, Insert(3, {"1", "x"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(full, Insert(3, {"1", "x"})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].params[1], "{\"x\",\"x\"}");
}

TEST_F(ChangeBatchTest, KeylessInsertsAreAllKeptEvenWhenIdentical) {
  ASSERT_EQ(Add(history_, Insert(2, {"1", "same"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(history_, Insert(2, {"1", "same"})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].expect_rows, 2);
  EXPECT_EQ(statements[0].params[1], "{\"same\",\"same\"}");
}

TEST_F(ChangeBatchTest, UpdatesWritingDifferentColumnsGoInSeparateStatements) {
  ASSERT_EQ(Add(accounts_, Update(1, {"1", "10", kToast})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"2", "20", "d"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"3", kToast, kToast})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 3u);
  int64_t rows = 0;
  for (const auto& s : statements) {
    EXPECT_EQ(s.expect_rows, 1);
    rows += s.expect_rows;
  }
  EXPECT_EQ(rows, 3);
  // Row 3 sets nothing but must still be found: it sets its key to itself.
  bool found_key_only = false;
  for (const auto& s : statements) {
    found_key_only = found_key_only ||
                     s.Sql(TypesOf(accounts_)).find("SET \"id\" = v.\"p2\"") != std::string::npos;
  }
  EXPECT_TRUE(found_key_only);
}

TEST_F(ChangeBatchTest, ArrayElementsAreQuotedAndEscaped) {
  ASSERT_EQ(Add(accounts_, Update(1, {"1", std::nullopt, "a\"b\\c,{d} NULL"})),
            ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"2", "0", "NULL"})), ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Update(1, {"3", "0", ""})), ChangeBatch::kAdded);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].params[1], "{NULL,\"0\",\"0\"}");
  EXPECT_EQ(statements[0].params[2], "{\"a\\\"b\\\\c,{d} NULL\",\"NULL\",\"\"}");
}

TEST_F(ChangeBatchTest, ManyInsertsGoByCopyWithEscapedFields) {
  ASSERT_EQ(Add(accounts_, Insert(1, {"1", std::nullopt, "tab\there\nnew\rcr\\back \\."})),
            ChangeBatch::kAdded);
  ASSERT_EQ(Add(accounts_, Insert(1, {"2", "0", "\\N"})), ChangeBatch::kAdded);
  for (size_t i = 2; i < ChangeBatch::kCopyRows; ++i) {
    ASSERT_EQ(Add(accounts_, Insert(1, {absl::StrCat(i + 1), "0", "x"})), ChangeBatch::kAdded);
  }
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_TRUE(statements[0].copy);
  EXPECT_EQ(statements[0].Sql(TypesOf(accounts_)),
            "COPY \"public\".\"accounts\" (\"id\", \"balance\", \"doc\") FROM STDIN");
  EXPECT_EQ(statements[0].expect_rows, static_cast<int64_t>(ChangeBatch::kCopyRows));
  EXPECT_TRUE(absl::StartsWith(statements[0].copy_data,
                               "1\t\\N\ttab\\there\\nnew\\rcr\\\\back \\\\.\n"
                               "2\t0\t\\\\N\n3\t0\tx\n"));
}

TEST_F(ChangeBatchTest, FreshRowsAreAppendedAndKeyedChangesAfterThemWait) {
  changes_.push_back(Insert(1, {"1", "0", "a"}));
  ASSERT_EQ(batch_.Add(accounts_, changes_.back(), /*fresh=*/true), ChangeBatch::kAdded);
  changes_.push_back(Insert(1, {"2", "0", "b"}));
  ASSERT_EQ(batch_.Add(accounts_, changes_.back(), /*fresh=*/true), ChangeBatch::kAdded);
  // A live change after snapshot rows cannot be merged with an unindexed row.
  EXPECT_EQ(Add(accounts_, Update(1, {"1", "5", "a"})), ChangeBatch::kFlushFirst);
  auto statements = batch_.Take();
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].params[0], "{\"1\",\"2\"}");
  EXPECT_EQ(Add(accounts_, Update(1, {"1", "5", "a"})), ChangeBatch::kAdded);
}

}  // namespace
}  // namespace ferry::pg_sink
