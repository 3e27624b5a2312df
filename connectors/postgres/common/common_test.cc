#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/common/pg_connection.h"
#include "gtest/gtest.h"

namespace ferry::pg {
namespace {

TEST(Lsn, RoundTrips) {
  auto lsn = ParseLsn("16/B374D848");
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, (uint64_t{0x16} << 32) | 0xB374D848u);
  EXPECT_EQ(FormatLsn(*lsn), "16/B374D848");
  EXPECT_EQ(FormatLsn(0), "0/0");
  EXPECT_EQ(*ParseLsn("0/0"), 0u);
  EXPECT_EQ(*ParseLsn("ffffffff/ffffffff"), ~uint64_t{0});
}

TEST(Lsn, RejectsGarbage) {
  for (const char* bad : {"", "/", "1/", "/1", "1/2/3", "g/1", "123456789/1", "1-2", " 1/2"}) {
    EXPECT_EQ(ParseLsn(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Identifiers, QuoteEverything) {
  EXPECT_EQ(QuoteIdentifier("t"), "\"t\"");
  EXPECT_EQ(QuoteIdentifier("My \"odd\" Table"), "\"My \"\"odd\"\" Table\"");
  EXPECT_EQ(QualifiedName("public", "select"), "\"public\".\"select\"");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QuoteLiteral("a\\b"), "'a\\b'");
}

TEST(ReplicationDsn, AddsAndReplacesReplicationKey) {
  auto dsn = ReplicationDsn("host=127.0.0.1 port=5433 dbname=app replication=true");
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  EXPECT_NE(dsn->find("replication=database"), std::string::npos);
  EXPECT_EQ(dsn->find("replication=true"), std::string::npos);
  EXPECT_NE(dsn->find("port='5433'"), std::string::npos);
  auto uri = ReplicationDsn("postgresql://u@localhost:5432/my%20db");
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_NE(uri->find("dbname='my db'"), std::string::npos);
  EXPECT_EQ(ReplicationDsn("host='unterminated").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PgConnection, UnreachableServerIsUnavailable) {
  auto conn = PgConnection::Connect("host=127.0.0.1 port=1 connect_timeout=2");
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ferry::pg
