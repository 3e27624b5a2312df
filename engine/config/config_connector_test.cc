// Connector sections of the config (a connector's own keys under its top-level section, read
// through the engine's Section): read with the region, errors in the engine's form, unknown
// keys around them, their order, and an engine-only load that skips them.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/config/config.h"
#include "engine/config/config_test_util.h"
#include "engine/config/key_table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A connector section as a connector would write one: its own struct and key table, read
// through the engine's Section. Stands for `postgres:` (connectors/postgres/common) and the
// bucket section to come.
struct StoreConfig {
  std::string bucket;
  uint64_t part_bytes = 8ull << 20;
  Secret key;
  std::string region_seen;  // what ConnectorContext said
};

absl::Status CheckBucket(absl::string_view s) {
  if (s.empty() || s.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("expected a bucket name, got ", Quote(s)));
  }
  return absl::OkStatus();
}

constexpr Key<StoreConfig> kStoreKeys[] = {
    {{.name = "bucket", .need = Need::kRequired, .check = CheckBucket},
     Field<&StoreConfig::bucket>},
    {{.name = "part_bytes", .min = 5 << 20, .max = int64_t{1} << 30},
     Field<&StoreConfig::part_bytes>},
    {{.name = "key"}, Field<&StoreConfig::key>},
};

class StoreSection final : public ConnectorSection {
 public:
  absl::string_view name() const override { return "objects"; }
  std::vector<std::string> keys() const override { return KnownKeys<StoreConfig>(kStoreKeys, ""); }
  absl::Status Read(const Section& section, const ConnectorContext& context) override {
    ++reads;
    StoreConfig c;
    c.region_seen = context.region;
    FERRY_RETURN_IF_ERROR(ReadSectionKeys<StoreConfig>(section, kStoreKeys, "", &c));
    if (c.part_bytes == (6u << 20)) return section.Error("part_bytes", "6MiB is unlucky");
    config = std::move(c);
    return absl::OkStatus();
  }

  StoreConfig config;
  int reads = 0;
};

absl::StatusOr<Config> ParseWithStore(const std::string& text, StoreSection* store) {
  return ParseConfig(text, "test.yaml", {.connectors = {store}});
}

TEST_F(ConfigTest, ConnectorSectionIsReadByItsConnectorWithTheRegion) {
  Parts p;
  p.extra = "objects:\n  bucket: ferry-east\n  part_bytes: 16MiB\n";
  StoreSection store;
  absl::StatusOr<Config> c = ParseWithStore(p.Text(), &store);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(store.reads, 1);
  EXPECT_EQ(store.config.bucket, "ferry-east");
  EXPECT_EQ(store.config.part_bytes, 16u << 20);
  EXPECT_EQ(store.config.region_seen, "east");
  // The engine's part is as without the section, and the dump knows nothing of it.
  EXPECT_EQ(c->DebugString(), Parse(Parts{})->DebugString());
  std::string dump;
  DumpKeys<StoreConfig>(kStoreKeys, {}, store.config, 2, &dump);
  EXPECT_EQ(dump, "  bucket: ferry-east\n  part_bytes: 16MiB\n  key: <unset>\n");
}

TEST_F(ConfigTest, ConnectorErrorsHaveTheEngineFormKeyLineAndColumn) {
  Parts p;
  p.extra = "objects:\n  bucket: a/b\n";
  StoreSection store;
  absl::StatusOr<Config> c = ParseWithStore(p.Text(), &store);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            "config test.yaml: key 'objects.bucket': expected a bucket name, got \"a/b\" "
            "(line 9, column 11)");
  p.extra = "objects:\n  part_bytes: 6MiB\n  bucket: b\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objects.part_bytes': 6MiB is unlucky (line 9, column 15)");
  p.extra = "objects:\n  part_bytes: 1KiB\n";  // getters check in table order
  ExpectError(ParseWithStore(p.Text(), &store), "key 'objects.bucket': is required");
  p.extra = "";  // an absent section is read as an empty one
  ExpectError(ParseWithStore(p.Text(), &store), "key 'objects.bucket': is required");
  p.extra = "objects: [1]\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objects': expected a map of keys, got a list at line 8, column 10");
}

TEST_F(ConfigTest, UnknownKeysAroundConnectorSectionsKeepTheirHints) {
  StoreSection store;
  Parts p;
  p.extra = "objects:\n  bucket: b\n  bukcet: c\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objects.bukcet': unknown key; did you mean 'bucket'? (line 10, column 3)");
  p.extra = "objects:\n  bucket: b\n  key_fil: /k\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objects.key_fil': unknown key; did you mean 'key_file'?");
  p.extra = "objcts:\n  bucket: b\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objcts': unknown key; did you mean 'objects'?");
  p.extra = "bucket: b\n";
  ExpectError(
      ParseWithStore(p.Text(), &store),
      "key 'bucket': unknown key; 'bucket' belongs under 'objects' (check the indentation)");
  p.extra = "objects:\n  bucket: b\n  workers: 4\n";
  ExpectError(ParseWithStore(p.Text(), &store),
              "key 'objects.workers': unknown key; 'workers' belongs under 'apply'");
  p.extra = "objects:\n  bucket: b\nqueue:\n  url: x\n";  // a connector not linked
  ExpectError(ParseWithStore(p.Text(), &store), "key 'queue': unknown key");
}

TEST_F(ConfigTest, ConnectorSectionsComeAfterTheTopLevelAndBeforeTheEngineSections) {
  StoreSection store;
  Parts p;
  p.top = "region: East\ndata_dir: /d\nrole: primary\n";
  p.extra = "objects:\n  bucket: a/b\n";
  ExpectError(ParseWithStore(p.Text(), &store), "key 'region'");
  EXPECT_EQ(store.reads, 0);
  p = Parts{};
  p.listen += "  admin: \"7400\"\n";
  p.extra = "objects:\n  bucket: a/b\n";
  ExpectError(ParseWithStore(p.Text(), &store), "key 'objects.bucket'");
  // Warnings too: the section's first, then the engine's.
  const std::string key = WriteFile("key", "k", 0640);
  p = Parts{};
  p.extra = "objects:\n  bucket: b\n  key_file: " + key + "\n";
  absl::StatusOr<Config> c = ParseWithStore(p.Text(), &store);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->warnings,
              ElementsAre(HasSubstr("key 'objects.key_file': secret file "),
                          HasSubstr("security.token_file"), HasSubstr("security.tls")));
}

TEST_F(ConfigTest, ConnectorSectionUnderAnEngineKeyIsABug) {
  class Clash final : public ConnectorSection {
   public:
    absl::string_view name() const override { return "listen"; }
    std::vector<std::string> keys() const override { return {}; }
    absl::Status Read(const Section&, const ConnectorContext&) override { return absl::OkStatus(); }
  } clash;
  absl::StatusOr<Config> c = ParseConfig(Parts{}.Text(), "test.yaml", {.connectors = {&clash}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal) << c.status();
  StoreSection a;
  StoreSection b;
  c = ParseConfig(Parts{}.Text(), "test.yaml", {.connectors = {&a, &b}});
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal) << c.status();
}

// LoadConfigFile(path) / ParseConfig(text, source): the engine's part of a ferryd config, for
// programs that link no connector. Connector sections are skipped unread; the rest is as strict.
TEST_F(ConfigTest, EngineOnlyLoadSkipsConnectorSections) {
  Parts p;
  p.extra = "queue:\n  url: \"kafka://x\"\n  anything: [1, 2]\nobjects:\n";
  absl::StatusOr<Config> c = ParseConfig(p.Text(), "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->region, "east");
  p.extra = "queue:\n  url: x\nfrobnicate: 1\n";  // not a map: still an unknown key
  ExpectError(ParseConfig(p.Text(), "test.yaml"), "key 'frobnicate': unknown key");
  p.extra = "queue:\n  url: x\nqueue:\n  url: y\n";
  ExpectError(ParseConfig(p.Text(), "test.yaml"), "key 'queue': is set twice");
  p.extra = "queue:\n  url: x\n";
  p.listen += "  admin: \"7400\"\n";
  ExpectError(ParseConfig(p.Text(), "test.yaml"), "key 'listen.admin'");
}

}  // namespace
}  // namespace ferry::config
