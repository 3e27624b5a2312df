// Every key of the config that concerns the Postgres connector reaches the capture's and
// apply's options: a config with each of them away from its default, read by the same loader
// and section as ferryd's, then handed to CaptureOptions / ApplyOptions.
#include "cmd/postgres_options.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ferry {
namespace {

constexpr char kConfig[] = R"(region: east
data_dir: /var/lib/ferry-east
role: primary
postgres:
  dsn: "host=db.internal port=6543 dbname=shop user=ferry"
  publication: shop_pub
  slot: shop_slot
  tables: [public.orders, sales.items]
  snapshot: false
  keyless_tables: refuse
  commit_delay_us: 1234
  commit_siblings: 9
listen:
  replication: 127.0.0.1:7401
peer:
  replication: 127.0.0.1:7411
  region: west
apply:
  conflict_policy: apply_remote
  synchronous_commit: true
  max_value_bytes: 4096
)";

struct Loaded {
  config::Config engine;
  pg::PostgresConfig postgres;
};

Loaded Load(const std::string& text) {
  pg::PostgresConfigSection section;
  absl::StatusOr<config::Config> c =
      config::ParseConfig(text, "test.yaml", {.connectors = {&section}});
  EXPECT_TRUE(c.ok()) << c.status();
  return Loaded{c.ok() ? *std::move(c) : config::Config{}, section.config()};
}

TEST(PostgresOptionsTest, EveryCaptureKeyReachesTheSource) {
  const Loaded l = Load(kConfig);
  const pg::PostgresSourceOptions o = CaptureOptions(l.postgres, l.engine);
  EXPECT_EQ(o.dsn,
            "host=db.internal port=6543 dbname=shop user=ferry application_name=ferry_capture");
  EXPECT_EQ(o.publication, "shop_pub");
  EXPECT_EQ(o.slot, "shop_slot");
  EXPECT_EQ(o.tables, (std::vector<std::string>{"public.orders", "sales.items"}));
  EXPECT_FALSE(o.snapshot);
  EXPECT_EQ(o.keyless_tables, pg::KeylessTablePolicy::kRefuse);
  EXPECT_EQ(o.commit_delay, absl::Microseconds(1234));
  EXPECT_EQ(o.commit_siblings, 9);
  EXPECT_EQ(o.origin_region, "east");
  EXPECT_EQ(o.resnapshot_dir, "/var/lib/ferry-east/resnapshot");
}

// Left out, the two group-commit keys arrive as their documented defaults (8,000 us, 4).
TEST(PostgresOptionsTest, TheGroupCommitDefaultsReachTheSource) {
  std::string text = kConfig;
  for (const char* line : {"  commit_delay_us: 1234\n", "  commit_siblings: 9\n"}) {
    text.erase(text.find(line), std::string(line).size());
  }
  const Loaded l = Load(text);
  const pg::PostgresSourceOptions o = CaptureOptions(l.postgres, l.engine);
  EXPECT_EQ(o.commit_delay, absl::Microseconds(8000));
  EXPECT_EQ(o.commit_siblings, 4);
}

TEST(PostgresOptionsTest, EveryApplyKeyReachesTheSink) {
  const Loaded l = Load(kConfig);
  const PostgresSinkOptions o = ApplyOptions(l.postgres, l.engine, {.epoch = 7});
  EXPECT_EQ(o.dsn, "host=db.internal port=6543 dbname=shop user=ferry");
  EXPECT_EQ(o.source_region, "west");
  EXPECT_EQ(o.epoch, 7u);
  EXPECT_EQ(o.conflict_policy, ConflictPolicy::kApplyRemote);
  EXPECT_TRUE(o.synchronous_commit);
  EXPECT_EQ(o.max_value_bytes, 4096u);
}

// During a rejoin apply takes the new primary's version whatever the configured policy; without
// a peer region named, the origins are named after "peer".
TEST(PostgresOptionsTest, ARejoinAppliesRemoteAndAnUnnamedPeerIsPeer) {
  std::string text = kConfig;
  for (const char* line : {"  conflict_policy: apply_remote\n", "  region: west\n"}) {
    text.erase(text.find(line), std::string(line).size());
  }
  const Loaded l = Load(text);
  EXPECT_EQ(ApplyOptions(l.postgres, l.engine, {}).conflict_policy, ConflictPolicy::kStopTable);
  const PostgresSinkOptions o = ApplyOptions(l.postgres, l.engine, {.epoch = 2, .rejoining = true});
  EXPECT_EQ(o.conflict_policy, ConflictPolicy::kApplyRemote);
  EXPECT_EQ(o.source_region, "peer");
}

}  // namespace
}  // namespace ferry
