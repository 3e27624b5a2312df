// The operator's view end to end (issue #20), on two live regions (real Postgres, real ferryd):
// every replicated table in `ferryctl tables` and status with its counts, its per-table series
// in /metrics from the start, the quarantine count from ferry.quarantine, the status page as
// headless Chromium renders it (a screenshot is kept as an artifact), and log.format: json.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const v1::TableState* Find(const v1::StatusReply& s, const std::string& name) {
  for (const auto& t : s.tables()) {
    if (t.table() == name) return &t;
  }
  return nullptr;
}

// Whether `text` is one JSON object (protobuf's parser, into a Struct).
bool ValidJson(const std::string& text) {
  google::protobuf::Struct parsed;
  return google::protobuf::util::JsonStringToMessage(text, &parsed).ok();
}

// Runs headless Chromium (Debian's `chromium`, installed by scripts/install-deps.sh) with
// `args` and returns what it printed; an error when it cannot run or fails.
absl::StatusOr<std::string> Chromium(const std::vector<std::string>& args, TempDir& dir) {
  std::vector<std::string> argv = {"chromium",
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--no-first-run",
                                   "--user-data-dir=" + dir.File("chromium-profile")};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = dir.File(absl::StrCat("chromium-", args.size(), ".out"));
  std::filesystem::remove(out);
  auto child = ChildProcess::Spawn(argv, out, {"HOME=" + dir.path()});
  if (!child.ok()) return child.status();
  const int status = (*child)->Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("chromium exited with ", status, ": ", ReadFile(out)));
  }
  return ReadFile(out);
}

class OperatorViewE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = TwoRegions::Start(
        {.schema_sql = "CREATE TABLE orders (id int PRIMARY KEY, note text);"
                       "CREATE TABLE idle (id int PRIMARY KEY);"
                       "INSERT INTO orders SELECT g, 'copied' FROM generate_series(1, 500) g;"
                       "ANALYZE orders;",  // the copy's estimate: pg_class.reltuples
         .east_yaml = "log:\n  format: json\n"});
    ASSERT_TRUE(started.ok()) << started.status();
    regions_ = *std::move(started);
    // The initial copy first (500 rows on west), so that the 20 rows below are streamed
    // changes, not part of a copy that began after them.
    ASSERT_TRUE(regions_->WaitForTablesEqual({"orders", "idle"}, absl::Seconds(90)).ok());
    ASSERT_TRUE(regions_->pg(Region::kEast)
                    .Exec("INSERT INTO orders SELECT g, 'live' FROM generate_series(501, 520) g")
                    .ok());
    ASSERT_TRUE(regions_->WaitForTablesEqual({"orders", "idle"}, absl::Seconds(90)).ok());
  }

  std::unique_ptr<TwoRegions> regions_;
};

TEST_F(OperatorViewE2ETest, EveryTableIsListedWithItsCountsInStatusTablesAndMetrics) {
  // West applied the initial copy (500 rows) and the 20 live inserts of orders; idle's copy was
  // empty but it is a replicated table all the same.
  auto west = regions_->PollStatus(Region::kWest, [](const v1::StatusReply& s) {
    const v1::TableState* orders = Find(s, "public.orders");
    return orders != nullptr && orders->changes_applied() == 20 && Find(s, "public.idle");
  });
  ASSERT_TRUE(west.ok()) << west.status() << regions_->LogTail(Region::kWest);
  const v1::TableState* orders = Find(*west, "public.orders");
  EXPECT_EQ(orders->state(), "replicating");
  EXPECT_EQ(orders->rows_copied(), 500u);
  EXPECT_GT(orders->last_commit_time_us(), 0);
  EXPECT_EQ(Find(*west, "public.idle")->state(), "replicating");
  // East lists the publication's tables and what it captured of each.
  auto east = regions_->PollStatus(Region::kEast, [](const v1::StatusReply& s) {
    return Find(s, "public.idle") != nullptr && Find(s, "public.orders") != nullptr &&
           Find(s, "public.orders")->changes_captured() == 20;
  });
  ASSERT_TRUE(east.ok()) << east.status();
  EXPECT_EQ(Find(*east, "public.orders")->rows_copied(), 500u);
  EXPECT_EQ(Find(*east, "public.orders")->rows_estimated(), 500);  // reltuples after the copy

  auto json = regions_->Ctl(Region::kWest, {"tables", "--json"});
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->exit_code, 0) << json->output;
  EXPECT_THAT(json->output, HasSubstr("\"region\": \"west\", \"role\": \"standby\""));
  EXPECT_THAT(json->output, HasSubstr("{\"table\": \"public.orders\", \"state\": \"replicating\", "
                                      "\"changes_applied\": 20, \"changes_captured\": 0, "));
  EXPECT_THAT(json->output, HasSubstr("\"rows_copied\": 500"));
  EXPECT_TRUE(ValidJson(json->output)) << json->output;
  auto text = regions_->Ctl(Region::kEast, {"tables"});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->exit_code, 0) << text->output;
  EXPECT_THAT(text->output, HasSubstr("CAPTURED"));
  EXPECT_THAT(text->output, ::testing::ContainsRegex("public\\.orders +replicating +20 +500 "));
  auto status = regions_->Ctl(Region::kWest, {"status"});
  ASSERT_TRUE(status.ok());
  EXPECT_THAT(status->output, HasSubstr("last change none"));
  EXPECT_THAT(status->output, HasSubstr("quarantine  0 change(s) awaiting a decision"));
  EXPECT_THAT(status->output, ::testing::ContainsRegex("public\\.idle +replicating "));

  // Per-table series from the start: 0 for a table that never stopped.
  for (Region r : {Region::kEast, Region::kWest}) {
    auto metrics = HttpGet(absl::StrCat("http://", regions_->metrics_address(r), "/metrics"));
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_THAT(metrics->body, HasSubstr("ferry_table_stopped{table=\"public.idle\"} 0"));
    EXPECT_THAT(metrics->body, HasSubstr("ferry_table_changes_total{table=\"public.orders\"} 20"));
    EXPECT_THAT(metrics->body, HasSubstr("ferry_quarantine_pending 0"));
  }

  // A restarted standby lists every table it applied before, and has their series, from its
  // start: before any change arrives (counts start again at 0).
  ASSERT_TRUE(regions_->StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions_->StartDaemon(Region::kWest).ok());
  auto restarted = regions_->Status(Region::kWest);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  ASSERT_NE(Find(*restarted, "public.idle"), nullptr) << restarted->DebugString();
  ASSERT_NE(Find(*restarted, "public.orders"), nullptr) << restarted->DebugString();
  EXPECT_EQ(Find(*restarted, "public.orders")->changes_applied(), 0u);
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->body, HasSubstr("ferry_table_stopped{table=\"public.idle\"} 0"));
}

TEST_F(OperatorViewE2ETest, QuarantinePendingCountsThePendingEntries) {
  // Nothing kept yet (ferry.quarantine is installed with the fence's functions, empty).
  auto before = regions_->Status(Region::kWest);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->quarantine_pending(), 0);
  // Two pending entries and a decided one, as a rejoin and a decision would leave them.
  ASSERT_TRUE(regions_
                  ->ExecBehindFence(
                      Region::kWest,
                      "INSERT INTO ferry.quarantine (id, source_region, epoch, xact, "
                      "commit_position, committed_at, table_schema, table_name, op, key, after, "
                      "status, log_seq, change_index) VALUES "
                      "(1, 'east', 1, '700', '0/1A2B3C', '2026-12-05 07:00:00+00', 'public', "
                      "'orders', 'insert', '[\"9001\"]', '{\"id\": 9001}', 'pending', 40, 0), "
                      "(2, 'east', 1, '700', '0/1A2B3C', '2026-12-05 07:00:00+00', 'public', "
                      "'orders', 'insert', '[\"9002\"]', '{\"id\": 9002}', 'pending', 40, 1), "
                      "(3, 'east', 1, '701', '0/1A2B4C', '2026-12-05 07:00:01+00', 'public', "
                      "'orders', 'delete', '[\"3\"]', NULL, 'discarded', 41, 0)")
                  .ok());
  auto counted = regions_->PollStatus(
      Region::kWest, [](const v1::StatusReply& s) { return s.quarantine_pending() == 2; });
  ASSERT_TRUE(counted.ok()) << counted.status();
  auto metrics =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kWest), "/metrics"));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("ferry_quarantine_pending 2"));
  auto shown = regions_->Ctl(Region::kWest, {"status"});
  ASSERT_TRUE(shown.ok());
  EXPECT_THAT(shown->output, HasSubstr("quarantine  2 change(s) awaiting a decision"));
}

TEST_F(OperatorViewE2ETest, StatusPageInHeadlessChromiumShowsBothRegionsAndTheTables) {
  // West must have applied something of orders for its row to show on west's page.
  ASSERT_TRUE(
      regions_
          ->PollStatus(Region::kWest,
                       [](const v1::StatusReply& s) { return Find(s, "public.orders") != nullptr; })
          .ok());
  TempDir dir("ferry-status-page");
  for (Region r : {Region::kEast, Region::kWest}) {
    const std::string url = absl::StrCat("http://", regions_->metrics_address(r), "/status");
    auto dom = Chromium({"--dump-dom", url}, dir);
    ASSERT_TRUE(dom.ok()) << dom.status();
    const bool east = r == Region::kEast;
    EXPECT_THAT(*dom, HasSubstr(east ? "<h1>Ferry: region east (primary)</h1>"
                                     : "<h1>Ferry: region west (standby)</h1>"));
    EXPECT_THAT(*dom, HasSubstr(east ? "<tr id=\"region-self\"><td>east (this one)</td>"
                                       "<td>primary</td><td>1</td><td>replicating</td>"
                                     : "<tr id=\"region-self\"><td>west (this one)</td>"
                                       "<td>standby</td><td>1</td><td>replicating</td>"));
    // The peer as it answered the probe.
    EXPECT_THAT(*dom, HasSubstr(east ? "<tr id=\"region-peer\"><td>west</td><td>standby</td>"
                                     : "<tr id=\"region-peer\"><td>east</td><td>primary</td>"));
    EXPECT_THAT(*dom, HasSubstr("<tr id=\"table-public.orders\"><td>public.orders</td>"
                                "<td>replicating</td>"));
    EXPECT_THAT(*dom, HasSubstr("<tr id=\"rpo\">"));
    EXPECT_THAT(*dom, HasSubstr("<tr id=\"lag\">"));
    EXPECT_THAT(*dom, HasSubstr("<td>last switchover or promote</td><td>none</td>"));
    EXPECT_THAT(*dom, Not(HasSubstr("two-primaries")));
  }
  // The screenshot: kept beside the build as the test's artifact.
  const std::string artifacts = FERRY_TEST_ARTIFACT_DIR;
  std::filesystem::create_directories(artifacts);
  const std::string png = artifacts + "/status-page-east.png";
  std::filesystem::remove(png);
  auto shot =
      Chromium({"--window-size=1280,1400", "--screenshot=" + png,
                absl::StrCat("http://", regions_->metrics_address(Region::kEast), "/status")},
               dir);
  ASSERT_TRUE(shot.ok()) << shot.status();
  const std::string image = ReadFile(png);
  ASSERT_GT(image.size(), 1000u) << "no screenshot at " << png;
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // The JSON beside the page.
  auto json =
      HttpGet(absl::StrCat("http://", regions_->metrics_address(Region::kWest), "/status.json"));
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->status, 200);
  EXPECT_THAT(json->body, HasSubstr("\"role\":\"standby\""));
  EXPECT_THAT(json->body, HasSubstr("\"quarantine_pending\":\"0\""));  // int64: a JSON string
}

TEST_F(OperatorViewE2ETest, JsonLogFormatCarriesTheSameEventsOneObjectALine) {
  // East runs with log.format: json, west with the default text.
  const std::string east = ReadFile(regions_->log_path(Region::kEast));
  const std::string west = ReadFile(regions_->log_path(Region::kWest));
  EXPECT_THAT(west, ::testing::ContainsRegex("info \\[west\\] region west started as standby"));
  int objects = 0;
  bool started = false;
  for (absl::string_view line : absl::StrSplit(east, '\n')) {
    if (line.empty() || line[0] != '{') continue;  // gRPC's own lines are not ferryd's
    ++objects;
    EXPECT_TRUE(absl::EndsWith(line, "\"}")) << line;
    EXPECT_TRUE(ValidJson(std::string(line))) << line;
    EXPECT_THAT(std::string(line),
                ::testing::ContainsRegex("^\\{\"time\":\"[0-9T:.-]+Z\",\"level\":\"[a-z]+\","
                                         "\"region\":\"east\",\"thread\":[0-9]+,\"message\":\""));
    if (absl::StrContains(line, "\"message\":\"region east started as primary")) started = true;
  }
  EXPECT_GT(objects, 0) << east;
  EXPECT_TRUE(started) << east;
  // No line in the text layout slipped through.
  EXPECT_THAT(east, Not(::testing::ContainsRegex("[0-9] info \\[east\\] ")));
}

}  // namespace
}  // namespace ferry::testing
