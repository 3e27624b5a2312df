#include "connectors/postgres/sink/sink_sql.h"

#include <gtest/gtest.h>

namespace ferry::pg_sink {
namespace {

v1::Relation Rel(v1::ReplicaIdentity identity) {
  v1::Relation r;
  r.set_schema("public");
  r.set_name("T");
  r.set_replica_identity(identity);
  auto* a = r.add_columns();
  a->set_name("id");
  a->set_type_name("integer");
  a->set_part_of_key(true);
  auto* b = r.add_columns();
  b->set_name("doc");
  b->set_type_name("json");
  b->set_part_of_key(identity == v1::REPLICA_IDENTITY_FULL);
  r.add_primary_key("id");
  return r;
}

TEST(SinkSqlTest, TypeHoldsWidening) {
  EXPECT_TRUE(TypeHolds("integer", "integer"));
  EXPECT_TRUE(TypeHolds("bigint", "integer"));
  EXPECT_FALSE(TypeHolds("integer", "bigint"));
  EXPECT_TRUE(TypeHolds("text", "character varying(10)"));
  EXPECT_TRUE(TypeHolds("character varying(20)", "character varying(10)"));
  EXPECT_FALSE(TypeHolds("character varying(5)", "character varying(10)"));
  EXPECT_FALSE(TypeHolds("character varying(5)", "text"));
  EXPECT_TRUE(TypeHolds("numeric", "numeric(10,2)"));
  EXPECT_FALSE(TypeHolds("integer", "text"));
  EXPECT_FALSE(TypeHolds("point", "integer"));
}

TEST(SinkSqlTest, StatementsQuoteAndNumberParameters) {
  v1::Relation r = Rel(v1::REPLICA_IDENTITY_DEFAULT);
  EXPECT_EQ(
      InsertSql(r, 2),
      "INSERT INTO \"public\".\"T\" (\"id\", \"doc\") OVERRIDING SYSTEM VALUE VALUES ($1, $2), "
      "($3, $4) ON CONFLICT "
      "DO NOTHING");
  EXPECT_EQ(CreateTableSql(r),
            "CREATE TABLE \"public\".\"T\" (\"id\" integer, \"doc\" json, PRIMARY KEY (\"id\"))");
  RowMatch m = MatchRow(r, {}, IdentityColumns(r), 2);
  EXPECT_EQ(UpdateSql(r, {1}, m), "UPDATE \"public\".\"T\" SET \"doc\" = $1 WHERE \"id\" = $2");
  EXPECT_EQ(DeleteSql(r, MatchRow(r, {}, IdentityColumns(r), 1)),
            "DELETE FROM \"public\".\"T\" WHERE \"id\" = $1");
}

TEST(SinkSqlTest, RowCountCheckedStatementsNumberTheCountAfterTheirOwnParameters) {
  EXPECT_EQ(RowCountCheckedSql("DELETE FROM t AS t USING unnest($1::int[]) v WHERE t.id = v.id", 1),
            "WITH ferry_rows AS (DELETE FROM t AS t USING unnest($1::int[]) v WHERE t.id = v.id "
            "RETURNING 1) SELECT CASE WHEN count(*) = $2::bigint THEN 0 ELSE ('ferry row count ' "
            "|| count(*))::integer END FROM ferry_rows");
  // What Postgres says when the cast of the marker fails.
  EXPECT_EQ(CheckedRowCount("invalid input syntax for type integer: \"ferry row count 3\""), 3);
  EXPECT_EQ(CheckedRowCount("invalid input syntax for type integer: \"ferry row count 0\""), 0);
  EXPECT_EQ(CheckedRowCount("invalid input syntax for type integer: \"abc\""), std::nullopt);
  EXPECT_EQ(CheckedRowCount("ferry row count "), std::nullopt);
  EXPECT_EQ(CheckedRowCount("ferry row count 99999999999999999999999"), std::nullopt);
}

TEST(SinkSqlTest, FullIdentityMatchesExactlyOneRowComparingAsText) {
  v1::Relation r = Rel(v1::REPLICA_IDENTITY_FULL);
  RowMatch m = MatchRow(r, {{"doc", "jsonb", false}}, IdentityColumns(r), 1);
  EXPECT_EQ(DeleteSql(r, m),
            "DELETE FROM \"public\".\"T\" WHERE ctid = (SELECT ctid FROM \"public\".\"T\" WHERE "
            "\"id\"::text IS NOT DISTINCT FROM ($1::integer)::text AND \"doc\"::text IS NOT "
            "DISTINCT FROM ($2::jsonb)::text LIMIT 1 FOR UPDATE)");
}

TEST(SinkSqlTest, RowJsonEscapesAndSkipsUnchangedToast) {
  v1::Relation r = Rel(v1::REPLICA_IDENTITY_DEFAULT);
  v1::Tuple t;
  t.add_values()->set_text("a\"b\\\n");
  t.add_values()->set_unchanged_toast(true);
  EXPECT_EQ(RowJson(r, t), "{\"id\":\"a\\\"b\\\\\\n\"}");
  v1::Tuple n;
  n.add_values()->set_null(true);
  n.add_values()->set_text("x");
  EXPECT_EQ(RowJson(r, n), "{\"id\":null,\"doc\":\"x\"}");
}

}  // namespace
}  // namespace ferry::pg_sink
