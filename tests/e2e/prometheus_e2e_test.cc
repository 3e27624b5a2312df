// Observability end to end: the real Prometheus of Debian's package scrapes a running pair of
// regions; promtool accepts the alert rules; every metric the Grafana dashboard and the rules
// name is exposed; and the peer-connection metric reflects a dead peer.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/http_get.h"
#include "tests/support/read_file.h"

namespace ferry::testing {
namespace {

const std::string kSource = FERRY_SOURCE_DIR;

// The body of a 200 answer; any other status is an error naming it.
absl::StatusOr<std::string> GetOk(const std::string& url) {
  absl::StatusOr<HttpResult> r = HttpGet(url);
  if (!r.ok()) return r.status();
  if (r->status != 200)
    return absl::UnavailableError(absl::StrCat("HTTP ", r->status, ": ", r->body));
  return r->body;
}

std::set<std::string> FerryNames(const std::string& text) {
  std::set<std::string> names;
  static const std::regex kName("ferry_[a-z0-9_]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

// Metric names in a Prometheus text exposition: each sample's name, and each declared family
// ("# TYPE name ..."; a per-table family has no samples while no table is stopped).
std::set<std::string> ExposedNames(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      names.insert(rest.substr(0, rest.find(' ')));
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

// The value of the first sample called `name` (no labels), or -1.
double SampleValue(const std::string& exposition, const std::string& name) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

TEST(PrometheusE2ETest, PromtoolAcceptsTheAlertRules) {
  auto child = ChildProcess::Spawn(
      {"promtool", "check", "rules", kSource + "/deploy/prometheus/ferry-rules.yml"});
  ASSERT_TRUE(child.ok()) << child.status();
  const int status = (*child)->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(PrometheusE2ETest, PrometheusScrapesEveryMetricTheDashboardAndRulesName) {
  auto started = TwoRegions::Start({.schema_sql = "CREATE TABLE t (id int PRIMARY KEY);"});
  ASSERT_TRUE(started.ok()) << started.status();
  TwoRegions& regions = **started;
  ASSERT_TRUE(regions.pg(Region::kEast).Exec("INSERT INTO t SELECT generate_series(1, 100)").ok());
  ASSERT_TRUE(regions.WaitForTablesEqual({"t"}, absl::Seconds(90)).ok());

  std::set<std::string> exposed;
  std::map<Region, std::string> bodies;
  for (Region r : {Region::kEast, Region::kWest}) {
    auto body = GetOk(absl::StrCat("http://", regions.metrics_address(r), "/metrics"));
    ASSERT_TRUE(body.ok()) << body.status();
    for (const auto& n : ExposedNames(*body)) exposed.insert(n);
    bodies[r] = *body;
  }
  // The distributions were observed as things happened: batches shipped by east, groups
  // applied by west.
  EXPECT_GT(SampleValue(bodies[Region::kEast], "ferry_batch_records_count"), 0);
  EXPECT_GT(SampleValue(bodies[Region::kWest], "ferry_apply_latency_seconds_count"), 0);
  EXPECT_GT(SampleValue(bodies[Region::kWest], "ferry_applied_transactions_total"), 0);
  std::set<std::string> referenced =
      FerryNames(ReadFile(kSource + "/deploy/grafana/ferry-dashboard.json"));
  for (const auto& n : FerryNames(ReadFile(kSource + "/deploy/prometheus/ferry-rules.yml"))) {
    referenced.insert(n);
  }
  ASSERT_GT(referenced.size(), 10u);
  for (const auto& name : referenced) {
    // A bucket's series exist only on regions with an objects: section (docs/objects.md);
    // these regions have none.
    if (name.rfind("ferry_objects_", 0) == 0) continue;
    EXPECT_TRUE(exposed.count(name))
        << name << " is named by the dashboard or rules but not exposed";
  }

  // The real Prometheus scrapes both regions with the repository's rules loaded.
  TempDir dir("ferry-prometheus");
  const int port = FreePort();
  {
    std::ofstream config(dir.File("prometheus.yml"));
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           << "rule_files:\n  - " << kSource << "/deploy/prometheus/ferry-rules.yml\n"
           << "scrape_configs:\n  - job_name: ferry\n    static_configs:\n"
           << "      - targets: [\"" << regions.metrics_address(Region::kEast) << "\", \""
           << regions.metrics_address(Region::kWest) << "\"]\n";
  }
  auto prometheus =
      ChildProcess::Spawn({"prometheus", "--config.file=" + dir.File("prometheus.yml"),
                           "--storage.tsdb.path=" + dir.File("data"),
                           absl::StrCat("--web.listen-address=127.0.0.1:", port)},
                          dir.File("prometheus.log"));
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  const std::string api = absl::StrCat("http://127.0.0.1:", port, "/api/v1/");
  auto poll = [&](const std::string& query, const std::string& want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    std::string last;
    while (absl::Now() < deadline) {
      auto body = GetOk(api + query);
      if (body.ok()) {
        last = *body;
        if (last.find(want) != std::string::npos) return std::string();
      }
      absl::SleepFor(absl::Milliseconds(200));  // polling Prometheus, not synchronisation
    }
    return absl::StrCat("no '", want, "' in the answer to ", query, ": ", last.substr(0, 500));
  };
  // Both regions scraped: ferry_up carries the role label of each.
  std::string miss = poll("query?query=ferry_up", "\"role\":\"primary\"");
  EXPECT_EQ(miss, "");
  miss = poll("query?query=ferry_up", "\"role\":\"standby\"");
  EXPECT_EQ(miss, "");
  miss = poll("rules", "FerryPeerUnreachable");
  EXPECT_EQ(miss, "");
  // With west gone, east reports its peer as disconnected (what FerryPeerUnreachable fires on).
  regions.KillDaemon(Region::kWest);
  miss = poll("query?query=ferry_peer_connected%3D%3D0", regions.metrics_address(Region::kEast));
  EXPECT_EQ(miss, "");
  (*prometheus)->Kill(SIGTERM);
  (*prometheus)->Wait();
}

}  // namespace
}  // namespace ferry::testing
