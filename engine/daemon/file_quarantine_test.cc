// FileQuarantine (a bucket-only region's quarantine): kept once, survives a reopen, decisions,
// and hostile input (row changes, oversized or malformed JSON, bad verbs and limits, a corrupt,
// truncated or newer file: refused, never overwritten).
#include "engine/daemon/file_quarantine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/read_file.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::ReadFile;

v1::QuarantinedChange Object(uint64_t seq, const std::string& key = "k") {
  v1::QuarantinedChange c;
  c.set_epoch(1);
  c.set_log_seq(seq);
  c.set_table_schema("s3");
  c.set_table_name("east-assets");
  c.set_op(kObjectPutOp);
  c.set_key(absl::StrCat("{\"key\": \"", key, "\"}"));
  c.set_after(R"({"version_id": "v1", "size": "3", "etag": "abc", "content_type": ""})");
  c.set_commit_time_us(1'700'000'000'000'000);
  return c;
}

v1::QuarantineRequest Verb(const std::string& verb, int64_t id = 0) {
  v1::QuarantineRequest r;
  r.set_verb(verb);
  r.set_id(id);
  return r;
}

class FileQuarantineTest : public ::testing::Test {
 protected:
  testing::TempDir dir_{"ferry-file-quarantine"};
  std::string path_ = dir_.path() + "/quarantine.pb";
};

TEST_F(FileQuarantineTest, KeepsEachObjectOnceAcrossReopens) {
  {
    FileQuarantine q(path_);
    auto pending = q.Pending();
    ASSERT_TRUE(pending.ok()) << pending.status();
    EXPECT_EQ(*pending, 0u);  // no file yet
    auto kept = q.Keep("east", {Object(5, "a"), Object(6, "b")});
    ASSERT_TRUE(kept.ok()) << kept.status();
    EXPECT_EQ(kept->kept, 2u);
  }
  FileQuarantine again(path_);
  // A rejoin sent again keeps nothing twice; a duplicate inside one batch neither.
  auto kept = again.Keep("east", {Object(5, "a"), Object(7, "c"), Object(7, "c")});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 1u);
  EXPECT_EQ(kept->present, 2u);
  // Another region's change of the same seq is another entry.
  ASSERT_EQ(again.Keep("north", {Object(5, "a")})->kept, 1u);
  auto listed = again.Decide(Verb("list"));
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->entries_size(), 4);
  EXPECT_EQ(listed->total(), 4u);
  EXPECT_EQ(listed->pending(), 4u);
  const v1::QuarantineEntry& first = listed->entries(0);
  EXPECT_EQ(first.id(), 1);
  EXPECT_EQ(first.source_region(), "east");
  EXPECT_EQ(first.op(), "object_put");
  EXPECT_EQ(first.key(), R"({"key": "a"})");
  EXPECT_EQ(first.commit_position(), "seq 5");
  EXPECT_EQ(first.committed_at(), "2023-11-14 22:13:20.000000+00");
  EXPECT_EQ(first.status(), "pending");
  EXPECT_EQ(listed->entries(3).id(), 4);
}

TEST_F(FileQuarantineTest, DiscardsOnceAndRefusesReapply) {
  FileQuarantine q(path_);
  ASSERT_TRUE(q.Keep("east", {Object(5), Object(6)}).ok());
  auto reapply = q.Decide(Verb("reapply", 1));
  EXPECT_EQ(reapply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(reapply.status().message().find("not reapplied by Ferry"), std::string::npos);
  v1::QuarantineRequest discard = Verb("discard", 1);
  discard.set_note("checked");
  auto done = q.Decide(discard);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->decided(), 1u);
  EXPECT_EQ(done->pending(), 1u);
  EXPECT_EQ(q.Decide(discard).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*q.Pending(), 1u);
  v1::QuarantineRequest only = Verb("list");
  only.set_status("discarded");
  auto listed = q.Decide(only);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->entries_size(), 1);
  EXPECT_EQ(listed->entries(0).note(), "checked");
  EXPECT_FALSE(listed->entries(0).decided_at().empty());
  auto shown = q.Decide(Verb("show", 2));
  ASSERT_TRUE(shown.ok());
  ASSERT_EQ(shown->entries_size(), 1);
  EXPECT_EQ(shown->entries(0).status(), "pending");
  EXPECT_EQ(q.Decide(Verb("show", 99)).status().code(), absl::StatusCode::kNotFound);
}

// The 100,000-entry limit: decided entries make room, oldest first; pending ones never go; a
// batch that does not fit is refused whole; an id is never given twice.
TEST_F(FileQuarantineTest, AFullFileDropsTheOldestDecidedEntriesAndRefusesWhenAllArePending) {
  constexpr uint64_t kMax = FileQuarantine::kMaxEntries;
  FileQuarantine q(path_);
  auto range = [](uint64_t first, uint64_t last) {
    std::vector<v1::QuarantinedChange> changes;
    for (uint64_t seq = first; seq <= last; ++seq) changes.push_back(Object(seq));
    return changes;
  };
  auto kept = q.Keep("east", range(1, kMax - 2));
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->kept, kMax - 2);

  // Three more while every entry is pending: refused whole, the file as it was.
  auto full = q.Keep("east", range(kMax - 1, kMax + 1));
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.status().message().find("99998 pending entries"), std::string::npos)
      << full.status();
  EXPECT_NE(full.status().message().find("nothing of this batch was kept"), std::string::npos);
  EXPECT_EQ(*q.Pending(), kMax - 2);

  // Two new ones fit exactly; a change already kept counts as present, not against the limit.
  std::vector<v1::QuarantinedChange> two = range(kMax - 1, kMax);
  two.push_back(Object(5));
  kept = q.Keep("east", two);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 2u);
  EXPECT_EQ(kept->present, 1u);
  EXPECT_EQ(q.Keep("east", {Object(kMax + 1)}).status().code(),
            absl::StatusCode::kResourceExhausted);

  // Three decided: the next two new entries take the room of the two oldest.
  for (int64_t id : {1, 2, 3}) ASSERT_TRUE(q.Decide(Verb("discard", id)).ok());
  kept = q.Keep("east", range(kMax + 1, kMax + 2));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 2u);
  EXPECT_EQ(q.Decide(Verb("show", 1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(q.Decide(Verb("show", 2)).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(q.Decide(Verb("show", 3)).ok());  // the third stays listed
  auto newest = q.Decide(Verb("show", static_cast<int64_t>(kMax + 2)));
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->entries(0).commit_position(), absl::StrCat("seq ", kMax + 2));
  EXPECT_EQ(*q.Pending(), kMax - 1);

  // Two more need two decided entries and one is left: refused, entry 3 kept.
  EXPECT_EQ(q.Keep("east", range(kMax + 3, kMax + 4)).status().code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(q.Decide(Verb("show", 3)).ok());

  // The newest entry decided and dropped with the oldest: after a reopen too, no id is given
  // twice.
  ASSERT_TRUE(q.Decide(Verb("discard", static_cast<int64_t>(kMax + 2))).ok());
  FileQuarantine reopened(path_);
  kept = reopened.Keep("east", range(kMax + 3, kMax + 4));
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->kept, 2u);
  EXPECT_EQ(reopened.Decide(Verb("show", 3)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reopened.Decide(Verb("show", static_cast<int64_t>(kMax + 2))).status().code(),
            absl::StatusCode::kNotFound);
  v1::QuarantineRequest last = Verb("list");
  last.set_limit(static_cast<uint32_t>(kMax));
  auto listed = reopened.Decide(last);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->total(), kMax);
  EXPECT_EQ(listed->pending(), kMax);
  const v1::QuarantineEntry& end = listed->entries(listed->entries_size() - 1);
  EXPECT_EQ(end.id(), static_cast<int64_t>(kMax + 4));
  EXPECT_EQ(end.commit_position(), absl::StrCat("seq ", kMax + 4));
}

TEST_F(FileQuarantineTest, HostileChangesAreRefusedAndNothingIsKept) {
  FileQuarantine q(path_);
  v1::QuarantinedChange row = Object(1);
  row.set_op("insert");
  v1::QuarantinedChange unknown = Object(2);
  unknown.set_op("object_put; DROP");
  v1::QuarantinedChange no_bucket = Object(3);
  no_bucket.set_table_name("");
  v1::QuarantinedChange long_bucket = Object(4);
  long_bucket.set_table_name(std::string(64, 'b'));
  v1::QuarantinedChange not_json = Object(5);
  not_json.set_key("\"k\"");
  v1::QuarantinedChange huge = Object(6);
  huge.set_after(
      absl::StrCat("{\"x\": \"", std::string(FileQuarantine::kMaxTextBytes, 'x'), "\"}"));
  v1::QuarantinedChange no_key = Object(7);
  no_key.set_key("");
  for (const v1::QuarantinedChange& bad :
       {row, unknown, no_bucket, long_bucket, not_json, huge, no_key}) {
    // One bad change refuses the whole batch.
    EXPECT_EQ(q.Keep("east", {Object(100), bad}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad.ShortDebugString().substr(0, 200);
    EXPECT_EQ(q.CurrentRows({bad}).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(q.Keep("", {Object(1)}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.Keep(std::string(257, 'r'), {Object(1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path_));  // nothing was written
  EXPECT_EQ(q.Decide(Verb("drop", 1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.Decide(Verb("discard", 0)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.Decide(Verb("show", -3)).status().code(), absl::StatusCode::kInvalidArgument);
  v1::QuarantineRequest bad_status = Verb("list");
  bad_status.set_status("lost");
  EXPECT_EQ(q.Decide(bad_status).status().code(), absl::StatusCode::kInvalidArgument);
  v1::QuarantineRequest bad_limit = Verb("list");
  bad_limit.set_limit(100001);
  EXPECT_EQ(q.Decide(bad_limit).status().code(), absl::StatusCode::kInvalidArgument);
  v1::QuarantineRequest long_note = Verb("discard", 1);
  long_note.set_note(std::string(4097, 'n'));
  EXPECT_EQ(q.Decide(long_note).status().code(), absl::StatusCode::kInvalidArgument);
  // Row keys are never explained by object entries.
  auto explained = q.Explains("east", {Object(1)});
  ASSERT_TRUE(explained.ok());
  EXPECT_EQ(*explained, std::vector<bool>{false});
}

TEST_F(FileQuarantineTest, ACorruptFileIsRefusedAndKeptAsItIs) {
  {
    FileQuarantine q(path_);
    ASSERT_TRUE(q.Keep("east", {Object(5)}).ok());
  }
  const std::string good = ReadFile(path_);
  const std::vector<std::string> bad = {
      "",                                                     // empty
      "ferry-quarantine 1\n",                                 // no checksum line
      absl::StrCat("ferry-quarantine 2\n", good.substr(19)),  // another header
      absl::StrCat(good.substr(0, good.size() - 1), "X"),     // a flipped payload byte
      good.substr(0, good.size() - 3),                        // truncated
      absl::StrCat(good.substr(0, 19), "zzzzzzzzzzzzzzzz", good.substr(35)),  // bad sum
  };
  for (const std::string& text : bad) {
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << text;
    FileQuarantine q(path_);
    EXPECT_EQ(q.Pending().status().code(), absl::StatusCode::kDataLoss) << text.size();
    EXPECT_EQ(q.Keep("east", {Object(9)}).status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(q.Decide(Verb("list")).status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(ReadFile(path_), text);  // never overwritten
  }
}

}  // namespace
}  // namespace ferry
