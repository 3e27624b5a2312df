// The side-by-side benchmark's reading of text, without clusters: figures out of a pgbench log,
// percentiles of a sample (an empty one has none), notify_listener's log read as it grows
// (a line is read only once complete; stderr lines are skipped), and the RESULTS.md section
// (figures, ratios and verdicts in the table; missing figures shown as such; the section
// replaced between its markers with the rest of the file kept), and a Postgres process's role
// by its title.
#include <gtest/gtest.h>

#include <fstream>

#include "bench/side_by_side/bench_text.h"
#include "bench/side_by_side/results_section.h"
#include "bench/side_by_side/side_by_side.h"
#include "tests/support/temp_dir.h"

namespace ferry::bench::sbs {
namespace {

TEST(BenchTextTest, PgbenchFiguresAreTheNumbersAfterTheirLabels) {
  const std::string log =
      "pgbench (15.10)\n"
      "number of transactions actually processed: 29934\n"
      "latency average = 1.998 ms\n"
      "tps = 1995.612345 (without initial connection time)\n";
  EXPECT_EQ(PgbenchFigure(log, "number of transactions actually processed: "), "29934");
  EXPECT_EQ(PgbenchFigure(log, "tps = "), "1995.612345");
  EXPECT_EQ(PgbenchFigure(log, "number of failed transactions: "), "");  // absent
  EXPECT_EQ(PgbenchFigure("tps = ", "tps = "), "");                      // nothing after it
  EXPECT_EQ(PgbenchFigure("tps = n/a", "tps = "), "");
}

TEST(BenchTextTest, APostgresProcessIsKnownByItsTitle) {
  // Titles as a Postgres 15 cluster of the suite showed them (NULs of /proc/PID/cmdline read as
  // spaces, so a title may end in them).
  EXPECT_EQ(PgRoleOfTitle("postgres: postgres app 127.0.0.1(48226) UPDATE waiting"),
            PgRole::kClientBackend);
  EXPECT_EQ(PgRoleOfTitle("postgres: postgres app 127.0.0.1(57166) idle in transaction   "),
            PgRole::kClientBackend);
  EXPECT_EQ(PgRoleOfTitle("postgres: postgres app [local] COPY"), PgRole::kClientBackend);
  EXPECT_EQ(PgRoleOfTitle("postgres: postgres app ::1(50172)"), PgRole::kClientBackend);
  EXPECT_EQ(PgRoleOfTitle("postgres: postgres my app 127.0.0.1(50172) idle"),
            PgRole::kClientBackend);  // a database name with a space
  EXPECT_EQ(PgRoleOfTitle("postgres: walsender postgres 127.0.0.1(48188) START_REPLICATION"),
            PgRole::kWalsender);
  EXPECT_EQ(PgRoleOfTitle("postgres: walsender postgres app 127.0.0.1(48188) idle"),
            PgRole::kWalsender);
  EXPECT_EQ(PgRoleOfTitle("postgres: logical replication worker for subscription 16436"),
            PgRole::kReplicationWorker);
  EXPECT_EQ(PgRoleOfTitle("postgres: logical replication worker for subscription 16436 sync 16390"),
            PgRole::kReplicationWorker);
  // With cluster_name set.
  EXPECT_EQ(PgRoleOfTitle("postgres: east: postgres app 127.0.0.1(1234) idle"),
            PgRole::kClientBackend);
  EXPECT_EQ(PgRoleOfTitle("postgres: east: walsender postgres 127.0.0.1(1) idle"),
            PgRole::kWalsender);
  EXPECT_EQ(PgRoleOfTitle("postgres: east: checkpointer"), PgRole::kRest);
  for (const char* rest :
       {"/usr/lib/postgresql/15/bin/postgres -D /tmp/x/data", "postgres: checkpointer",
        "postgres: background writer", "postgres: walwriter", "postgres: autovacuum launcher",
        "postgres: autovacuum worker app", "postgres: logical replication launcher",
        "postgres: parallel worker for PID 13777", "", "postgres: ", "postgres: a b c(d)",
        "postgres: a b (1)"}) {
    EXPECT_EQ(PgRoleOfTitle(rest), PgRole::kRest) << rest;
  }
}

TEST(BenchTextTest, PercentilesInterpolateBetweenRanksAndAnEmptySampleHasNone) {
  EXPECT_FALSE(Percentile({}, 0.5).has_value());
  EXPECT_DOUBLE_EQ(*Percentile({7}, 0.99), 7);
  const std::vector<double> sorted = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(*Percentile(sorted, 0), 1);
  EXPECT_DOUBLE_EQ(*Percentile(sorted, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(*Percentile(sorted, 0.99), 3.97);
  EXPECT_DOUBLE_EQ(*Percentile(sorted, 1), 4);
  EXPECT_DOUBLE_EQ(*Percentile(sorted, 2), 4);  // clamped
  EXPECT_DOUBLE_EQ(*Percentile(sorted, -1), 1);
}

TEST(BenchTextTest, TheNotifyLogIsReadAsItGrowsOneCompleteLineAtATime) {
  testing::TempDir dir("sbs-text");
  const std::string path = dir.path() + "/notify.log";
  std::ofstream out(path);
  NotifyLog log(path);
  EXPECT_FALSE(log.Ready());  // no file content yet
  out << "ready\nbench_probe 12 1700000000250000\nbench_probe 12 1700000000900000\n"
      << "notify_listener: a warning on stderr\nbench_probe 13 17000000";
  out.flush();
  EXPECT_TRUE(log.Ready());
  EXPECT_EQ(log.FirstSeenByPayload("probe"),
            (std::map<std::string, double>{{"12", 1700000000.25}}));
  EXPECT_DOUBLE_EQ(*log.LastSeen("probe", "12"), 1700000000.9);
  EXPECT_FALSE(log.LastSeen("probe", "13").has_value());  // its line is not complete yet
  out << "01000000\nbench_pgbench_accounts  1700000002000000\n";
  out.flush();
  EXPECT_DOUBLE_EQ(*log.LastSeen("probe", "13"), 1700000001.0);
  EXPECT_DOUBLE_EQ(*log.LastSeen("probe"), 1700000001.0);
  EXPECT_DOUBLE_EQ(*log.LastSeen("pgbench_accounts"), 1700000002.0);  // an empty payload
  EXPECT_FALSE(log.LastSeen("pgbench_tellers").has_value());
}

TEST(BenchTextTest, TheResultsSectionShowsFiguresRatiosAndWhatIsMissing) {
  Settings settings;
  settings.SetSizes(/*quick_run=*/false);
  settings.repo = "/nonexistent";  // no commit to name: "?"
  Figures figures;
  figures.SetNumber("load_native", 6.1);
  figures.SetNumber("load_ferry", 10.0);
  const std::string section = ResultsSection(settings, figures);
  EXPECT_EQ(section.rfind("<!-- side-by-side:begin -->", 0), 0u) << section;
  EXPECT_NE(section.find("<!-- side-by-side:end -->\n"), std::string::npos);
  EXPECT_NE(section.find("| 6.1 s | 10.0 s | 0.61x speed | >= 1.5x | NO |"), std::string::npos)
      << section;
  // The catch-up did not run: its figures are shown as missing, not as zero.
  EXPECT_NE(section.find("| n/a | n/a | n/a | >= 1x (aim 2x) | ? |"), std::string::npos) << section;
  figures.SetNumber("load_ferry", 4.0);
  EXPECT_NE(ResultsSection(settings, figures).find("| 1.52x speed | >= 1.5x | yes |"),
            std::string::npos);
}

TEST(BenchTextTest, WritingTheSectionReplacesItAndKeepsTheRestOfTheFile) {
  testing::TempDir dir("sbs-text");
  Settings settings;
  settings.results_path = dir.path() + "/RESULTS.md";
  const std::string first = "<!-- side-by-side:begin -->\nold\n<!-- side-by-side:end -->\n";
  ASSERT_TRUE(WriteResultsSection(settings, first).ok());  // no file: a new one
  EXPECT_NE(ReadFile(settings.results_path).find(first), std::string::npos);
  {
    std::ofstream out(settings.results_path);
    out << "# Benchmark results\n\nbefore\n\n" << first << "\n## Other section\nafter\n";
  }
  const std::string second = "<!-- side-by-side:begin -->\nnew\n<!-- side-by-side:end -->\n";
  ASSERT_TRUE(WriteResultsSection(settings, second).ok());
  EXPECT_EQ(ReadFile(settings.results_path),
            "# Benchmark results\n\nbefore\n\n" + second + "\n## Other section\nafter\n");
}

}  // namespace
}  // namespace ferry::bench::sbs
