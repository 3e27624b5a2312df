// Every change kind and every built-in type family, captured on east, shipped and applied on
// west through two ferryd processes: the tables must end up identical (compared as row text).
// User-defined types (enum, domain, composite) must exist on the target, as with native
// logical replication; the tables themselves are created by apply.
#include <gtest/gtest.h>

#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

constexpr char kTypes[] = R"sql(
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN positive AS int CHECK (VALUE > 0);
  CREATE TYPE pair AS (a int, b text);
)sql";

constexpr char kSchema[] = R"sql(
  CREATE TABLE all_types (
    id int PRIMARY KEY,
    i2 smallint, i8 bigint, num numeric, num_p numeric(10,2), f4 real, f8 double precision,
    t text, vc varchar(20), c char(3), b bytea, ia int[], ta text[], j json, jb jsonb,
    u uuid, ip inet, net cidr, d date, tm time, tmz timetz, ts timestamp, tsz timestamptz,
    iv interval, bo boolean, m mood, p positive, pr pair, big text);
  CREATE TABLE "Mixed Case" ("Select" int PRIMARY KEY, "two words" text);
  CREATE TABLE no_key (a int, b text);
  ALTER TABLE no_key REPLICA IDENTITY FULL;
  CREATE TABLE wiped (id int PRIMARY KEY);
  CREATE TABLE parted (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
  CREATE TABLE parted_east PARTITION OF parted FOR VALUES IN ('east');
  CREATE TABLE parted_west PARTITION OF parted FOR VALUES IN ('west');
)sql";

TEST(TypesE2ETest, EveryChangeKindAndTypeFamilyArrivesExactly) {
  auto started =
      TwoRegions::Start({.schema_sql = std::string(kTypes) + kSchema, .standby_sql = kTypes});
  ASSERT_TRUE(started.ok()) << started.status();
  TwoRegions& regions = **started;
  PgCluster& east = regions.pg(Region::kEast);
  ASSERT_TRUE(east.Exec(R"sql(
    INSERT INTO all_types VALUES
      (1, 1, 9223372036854775807, 'NaN', 12.34, 'Infinity', '-Infinity',
       'quote '' and "dq" and unicode ☃ é', 'vc', 'abc', '\x00ff10', '{1,NULL,3}',
       '{"a b",NULL,"c\"d"}', '{"k": [1, 2]}', '{"z": 1, "a": null}',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.1/24', '10.0.0.0/8', '2024-02-29',
       '23:59:59.999999', '12:00+05:30', '2024-01-01 00:00:00.123456',
       '2024-06-01 12:00:00+02', '1 year 2 mons 3 days 04:05:06.789', true, 'happy', 7,
       ROW(1, 'x'), repeat('big value ', 20000)),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, -32768, -1, '-0.000001', -99999999.99, 1.5e-10, 3.141592653589793, '', '', '',
       '\x', '{}', '{}', '[]', '[]', '00000000-0000-0000-0000-000000000000', '::1', '::/0',
       '0001-01-01 BC', '00:00', '00:00-12', 'infinity', '-infinity', '-1 day', false, 'sad',
       1, ROW(NULL, NULL), 'small');
    INSERT INTO "Mixed Case" VALUES (1, 'one'), (2, 'two');
    INSERT INTO no_key VALUES (1, 'dup'), (1, 'dup'), (2, 'other');
    INSERT INTO wiped SELECT generate_series(1, 20);
    INSERT INTO parted VALUES (1, 'east'), (2, 'west');
  )sql")
                  .ok());
  // Updates that leave the TOASTed value alone, key updates, deletes, truncate, FULL identity
  // with identical rows (exactly one of them must change), in multi-statement transactions.
  ASSERT_TRUE(east.Exec(R"sql(
    BEGIN;
    UPDATE all_types SET t = 'changed', m = 'ok' WHERE id = 1;
    UPDATE all_types SET id = 30 WHERE id = 3;
    DELETE FROM all_types WHERE id = 2;
    COMMIT;
    UPDATE no_key SET b = 'one dup changed' WHERE ctid = (SELECT ctid FROM no_key WHERE a = 1 LIMIT 1);
    DELETE FROM no_key WHERE b = 'other';
    UPDATE "Mixed Case" SET "two words" = NULL WHERE "Select" = 2;
    TRUNCATE wiped;
    INSERT INTO wiped VALUES (100);
    UPDATE parted SET region = 'west' WHERE id = 1;
    BEGIN; INSERT INTO "Mixed Case" VALUES (3, 'rolled back'); ROLLBACK;
  )sql")
                  .ok());
  ASSERT_TRUE(regions
                  .WaitForTablesEqual({"all_types", "\"Mixed Case\"", "no_key", "wiped", "parted"},
                                      absl::Seconds(120))
                  .ok());
  auto big = regions.pg(Region::kWest).QueryValue("SELECT length(big) FROM all_types WHERE id = 1");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->value_or(""), "200000");  // the unchanged TOASTed value survived the update
}

}  // namespace
}  // namespace ferry::testing
