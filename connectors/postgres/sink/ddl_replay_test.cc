#include "connectors/postgres/sink/ddl_replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::pg_sink {
namespace {

std::vector<std::string> Split(std::string_view sql) {
  std::vector<std::string> out;
  for (std::string_view s : SplitStatements(sql)) out.emplace_back(s);
  return out;
}

v1::PgDdlMessage Message(const std::string& tag, int ordinal, const std::string& query,
                         const std::vector<std::string>& tables = {}) {
  v1::PgDdlMessage m;
  m.set_v(1);
  m.set_tag(tag);
  m.set_ordinal(ordinal);
  m.set_query(query);
  for (const std::string& t : tables) {
    auto* ref = m.add_tables();
    ref->set_schema("public");
    ref->set_name(t);
  }
  return m;
}

TEST(DdlReplayTest, SplitsAtSemicolonsOutsideQuotesCommentsAndBodies) {
  EXPECT_EQ(Split("create table a (x int); alter table a add y int;"),
            (std::vector<std::string>{"create table a (x int)", "alter table a add y int"}));
  EXPECT_EQ(Split("  -- lead; comment\n select 1 /* a; /* nested; */ still; */ ;;; select 2"),
            (std::vector<std::string>{"select 1", "select 2"}));
  EXPECT_EQ(Split("insert into t values ('a;b', 'it''s;', E'x\\';y'); select \"semi;col\""),
            (std::vector<std::string>{"insert into t values ('a;b', 'it''s;', E'x\\';y')",
                                      "select \"semi;col\""}));
  EXPECT_EQ(Split("create function f() returns int as $body$ select 1; $body$ language sql; "
                  "do $$ begin perform 1; end $$"),
            (std::vector<std::string>{
                "create function f() returns int as $body$ select 1; $body$ language sql",
                "do $$ begin perform 1; end $$"}));
  EXPECT_EQ(Split("create rule r as on insert to t do also (insert into u values (1); "
                  "insert into u values (2)); select $1"),
            (std::vector<std::string>{"create rule r as on insert to t do also (insert into u "
                                      "values (1); insert into u values (2))",
                                      "select $1"}));
  EXPECT_EQ(Split("create function g() returns int language sql begin atomic select 1; "
                  "select case when true then 2 end; end; select 3"),
            (std::vector<std::string>{"create function g() returns int language sql begin "
                                      "atomic select 1; select case when true then 2 end; end",
                                      "select 3"}));
  EXPECT_EQ(Split("select a$b; select 1"), (std::vector<std::string>{"select a$b", "select 1"}));
}

TEST(DdlReplayTest, HostileTextNeverReadsPastItsEnd) {
  for (const char* sql : {"select 'unterminated; x", "select \"open; y", "select $q$ open; z",
                          "/* never closed; ", "select E'\\", "$", "'", "--", "U&", "e'"}) {
    std::vector<std::string> parts = Split(sql);
    EXPECT_LE(parts.size(), 1u) << sql;
  }
  std::string deep(100000, '(');
  EXPECT_EQ(Split(deep + ";" + deep).size(), 1u);  // never closed: one statement
  EXPECT_TRUE(Split("").empty());
  EXPECT_TRUE(Split(" ; ; -- only comments").empty());
}

TEST(DdlReplayTest, TagsMatchWithTheirModifiersAndNotOtherCommands) {
  EXPECT_TRUE(MatchesTag("create unlogged table t (a int)", "CREATE TABLE"));
  EXPECT_TRUE(MatchesTag("CREATE TEMP TABLE t (a int)", "CREATE TABLE"));
  EXPECT_TRUE(MatchesTag("create table t (a int generated always as (1) stored)", "CREATE TABLE"));
  EXPECT_FALSE(MatchesTag("create table t as select 1", "CREATE TABLE"));
  EXPECT_TRUE(MatchesTag("create table t as select 1", "CREATE TABLE AS"));
  EXPECT_TRUE(MatchesTag("select 1 into t", "SELECT INTO"));
  EXPECT_FALSE(MatchesTag("select 1", "SELECT INTO"));
  EXPECT_TRUE(MatchesTag("CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX"));
  EXPECT_TRUE(MatchesTag("create or replace function f() returns int", "CREATE FUNCTION"));
  EXPECT_TRUE(MatchesTag("create constraint trigger x after insert on t", "CREATE TRIGGER"));
  EXPECT_FALSE(MatchesTag("alter index i rename to j", "ALTER TABLE"));
  EXPECT_FALSE(MatchesTag("do $$ begin alter table t add a int; end $$", "ALTER TABLE"));
  EXPECT_FALSE(MatchesTag("", "ALTER TABLE"));
  EXPECT_FALSE(MatchesTag("alter table t add a int", ""));
}

TEST(DdlReplayTest, TheOrdinalPicksTheStatementAndATableMustBeNamedInIt) {
  const std::string q =
      "create table a (x int); insert into a values (1); alter table a add y int default 1; "
      "create index concurrently i on a (x); alter table \"B\" rename to c";
  EXPECT_EQ(*StatementToReplay(Message("ALTER TABLE", 1, q, {"a"})),
            "alter table a add y int default 1");
  EXPECT_EQ(*StatementToReplay(Message("ALTER TABLE", 2, q, {"c"})),
            "alter table \"B\" rename to c");
  EXPECT_EQ(*StatementToReplay(Message("CREATE INDEX", 1, q, {"a"})), "create index  i on a (x)");
  EXPECT_EQ(*StatementToReplay(Message("CREATE TABLE", 1, q, {"a"})), "create table a (x int)");
  // More commands with the tag than the text holds: they ran inside a function or DO block.
  EXPECT_EQ(StatementToReplay(Message("ALTER TABLE", 3, q, {"a"})).status().code(),
            absl::StatusCode::kNotFound);
  // The text's statement names another table than the command touched.
  const std::string mixed =
      "do $$ begin execute 'alter table hidden add z int'; end $$; "
      "alter table shown add w int";
  EXPECT_EQ(StatementToReplay(Message("ALTER TABLE", 1, mixed, {"hidden"})).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*StatementToReplay(Message("ALTER TABLE", 1,
                                       "ALTER TABLE IF EXISTS ONLY "
                                       "public.\"Mixed\" ADD a int",
                                       {"Mixed"})),
            "ALTER TABLE IF EXISTS ONLY public.\"Mixed\" ADD a int");
  EXPECT_EQ(*StatementToReplay(
                Message("ALTER TABLE", 1, "alter table p detach partition p1 concurrently", {"p"})),
            "alter table p detach partition p1 ");
  // A qualified name must be the table's schema too.
  EXPECT_EQ(StatementToReplay(Message("ALTER TABLE", 1, "alter table other.t add a int", {"t"}))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(
      StatementToReplay(Message("ALTER TABLE", 1, "alter table public.t add a int", {"t"})).ok());
  EXPECT_TRUE(
      StatementToReplay(Message("ALTER TABLE", 1, "alter table public.t rename to u", {"u"})).ok());
}

TEST(DdlReplayTest, TextFerryCannotSplitSafelyIsNeverRun) {
  // With standard_conforming_strings off, '\\'' escapes a quote: the server saw other
  // statements than a standard lexer would.
  v1::PgDdlMessage m = Message("ALTER TABLE", 1,
                               "select 'x\\'; alter table t add c int; --'; "
                               "alter table t add d int",
                               {"t"});
  m.set_backslash_quotes(true);
  EXPECT_EQ(StatementToReplay(m).status().code(), absl::StatusCode::kNotFound);
  // Over 1 MiB the source sends no text, only its size.
  v1::PgDdlMessage big = Message("ALTER TABLE", 1, "", {"t"});
  big.set_query_bytes(5 << 20);
  auto refused = StatementToReplay(big);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(refused.status().message().find("5242880 bytes"), std::string::npos);
  EXPECT_TRUE(ParseDdlMessage(R"({"v":1,"tag":"X","ordinal":1,"query_bytes":"5242880"})").ok());
  EXPECT_FALSE(ParseDdlMessage(R"({"v":1,"tag":"X","ordinal":1,"query_bytes":"0"})").ok());
}

TEST(DdlReplayTest, MessagesFromOutsideAreCheckedBeforeUse) {
  auto ok = ParseDdlMessage(
      R"({"v":1,"tag":"ALTER TABLE","ordinal":2,"query":"alter table t add a int",)"
      R"("search_path":"public","role":"app","tables":[{"schema":"public","name":"t"}],)"
      R"("from_the_future":true})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->ordinal(), 2);
  EXPECT_EQ(ok->role(), "app");
  for (const char* bad : {
           "",
           "not json",
           "[]",
           "{\"v\":1",
           R"({"v":2,"tag":"X","ordinal":1,"query":"q"})",
           R"({"v":1,"tag":"","ordinal":1,"query":"q"})",
           R"({"v":1,"tag":"X","ordinal":0,"query":"q"})",
           R"({"v":1,"tag":"X","ordinal":-5,"query":"q"})",
           R"({"v":1,"tag":"X","ordinal":1,"query":""})",
           R"({"v":1,"tag":"X","ordinal":1,"query":"q","tables":[{"schema":"s"}]})",
           R"({"v":1,"tag":"X","ordinal":"one","query":"q"})",
           R"({"v":1,"tag":"X","ordinal":99999999999,"query":"q"})",
       }) {
    EXPECT_EQ(ParseDdlMessage(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  std::string huge =
      R"({"v":1,"tag":"X","ordinal":1,"query":")" + std::string(kMaxDdlMessageBytes, 'a') + "\"}";
  EXPECT_EQ(ParseDdlMessage(huge).status().code(), absl::StatusCode::kInvalidArgument);
  std::string many = R"({"v":1,"tag":"X","ordinal":1,"query":"q","tables":[)";
  for (int i = 0; i <= kMaxDdlTables; ++i) {
    many += std::string(i ? "," : "") + R"({"schema":"s","name":"n"})";
  }
  EXPECT_EQ(ParseDdlMessage(many + "]}").status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_TRUE(ParseTruncateMessage(R"({"v":1,"schema":"public","name":"p1"})").ok());
  EXPECT_FALSE(ParseTruncateMessage(R"({"v":1,"schema":"public"})").ok());
  EXPECT_FALSE(ParseTruncateMessage("{").ok());
}

}  // namespace
}  // namespace ferry::pg_sink
