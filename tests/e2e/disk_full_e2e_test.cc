// A full disk under the standby (issue #14 item 9), on a real small file system: west's data_dir
// is a tmpfs of its own (tests/support/small_filesystem.h; the test skips, saying so, where it
// cannot mount one). When the disk fills, west refuses the batches it cannot make durable and
// loses nothing; a restart while the disk is still full starts; once space is freed, replication
// goes on without another restart and the regions end equal.
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/e2e/two_regions.h"
#include "tests/support/small_filesystem.h"

namespace ferry::testing {
namespace {

constexpr char kSchema[] = R"sql(
  CREATE TABLE docs (id bigserial PRIMARY KEY, body text NOT NULL);
)sql";

void DumpLogs(TwoRegions& regions) {
  for (Region r : {Region::kEast, Region::kWest}) {
    std::ifstream in(regions.log_path(r));
    std::string line, tail;
    while (std::getline(in, line)) {
      tail = (tail + line + "\n").substr(tail.size() > 8000 ? tail.size() - 8000 : 0);
    }
    std::cerr << "---- ferryd log " << (r == Region::kEast ? "east" : "west") << " (tail)\n"
              << tail;
  }
}

TEST(DiskFullE2ETest, StandbyDiskFullLosesNothingRestartsAndRecoversWithoutARestart) {
  // Room for west's two logs (RocksDB preallocates about 9 MiB of each WAL file, more for the one a
  // restart makes after replaying a backlog) and a ballast.
  auto fs = SmallFilesystem::Create(uint64_t{192} << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status();
  auto started =
      TwoRegions::Start({.schema_sql = kSchema, .standby_data_dir = (*fs)->path() + "/west-data"});
  ASSERT_TRUE(started.ok()) << started.status();
  TwoRegions& regions = **started;
  const std::vector<std::string> tables = {"docs"};
  ASSERT_TRUE(regions.pg(Region::kEast).Exec("INSERT INTO docs (body) VALUES ('before')").ok());
  ASSERT_TRUE(regions.WaitForTablesEqual(tables, absl::Seconds(90)).ok());

  // The disk fills: 1 MiB left, then 40 MB of changes arrive.
  ASSERT_TRUE((*fs)->Fill("ballast", 1 << 20).ok());
  ASSERT_TRUE(regions.pg(Region::kEast)
                  .Exec("DO $$ BEGIN FOR i IN 1..400 LOOP INSERT INTO docs (body) SELECT "
                        "repeat(md5(g::text), 32) FROM generate_series(1, 100) g; COMMIT; END "
                        "LOOP; END $$")
                  .ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::string refused;
  while (absl::Now() < deadline) {  // polling east's view of the stream, not synchronisation
    auto e = regions.Status(Region::kEast);
    ASSERT_TRUE(e.ok()) << e.status();
    if (e->peer().last_error().find("No space left on device") != std::string::npos) {
      refused = e->peer().last_error();
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (refused.empty()) DumpLogs(regions);
  ASSERT_FALSE(refused.empty()) << "west never ran out of space";
  std::cerr << "east was told: " << refused << "\n";
  auto e = regions.Status(Region::kEast);
  ASSERT_TRUE(e.ok());
  EXPECT_GT(e->rpo().records(), 0u) << "what west could not store is still east's to ship";

  // A restart while the disk is still full: it starts with the space the failure left.
  ASSERT_TRUE(regions.StopDaemon(Region::kWest).ok());
  absl::Status restarted = regions.StartDaemon(Region::kWest);
  if (!restarted.ok()) DumpLogs(regions);
  ASSERT_TRUE(restarted.ok()) << restarted;
  const int pid = regions.pid(Region::kWest);

  // Space comes back: the same ferryd takes the stream again, no restart.
  ASSERT_TRUE((*fs)->Remove("ballast").ok());
  absl::Status equal = regions.WaitForTablesEqual(tables, absl::Seconds(180));
  if (!equal.ok()) DumpLogs(regions);
  ASSERT_TRUE(equal.ok()) << equal;
  EXPECT_TRUE(regions.running(Region::kWest));
  EXPECT_EQ(regions.pid(Region::kWest), pid) << "west was restarted";
  auto count = regions.pg(Region::kWest).QueryValue("SELECT count(*) FROM docs");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->value_or(""), "40001");
  ASSERT_TRUE(regions.StopDaemon(Region::kWest).ok());
  ASSERT_TRUE(regions.StopDaemon(Region::kEast).ok());
}

}  // namespace
}  // namespace ferry::testing
