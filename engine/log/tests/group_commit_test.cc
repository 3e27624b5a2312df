// Group commit, arranged deterministically: writer A's sync is held at the fault file system's
// gate; writers B, C and D queue behind it; once A's sync is released, A's group commits, then
// B leads one group holding B, C and D. Exactly two syncs for four appends.
//
// Waiting is by condition, never by sleeping: the gate reports A's paused sync, and the queued
// writers are recognised by their threads being asleep (state S in /proc/self/task/TID/stat).
// Inside Append a thread can only sleep on the log's mutex or on its own condition variable; the
// mutex is free while A syncs (the leader drops it for the write), so three writers asleep at
// once are three writers queued.
#include <gtest/gtest.h>
#include <rocksdb/file_system.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/log/durable_log.h"
#include "engine/log/fault_injection_fs.h"
#include "engine/log/tests/log_test_support.h"

namespace ferry {
namespace {

using log_testing::ReadAll;
using log_testing::ScratchDir;

pid_t CurrentThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The scheduler state letter of one of our threads ('R', 'S', 'D', ...), or '?' when unknown.
char ThreadState(pid_t tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return '?';
  // Format: "tid (comm) S ...": comm may contain spaces, so look after the last ')'.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return '?';
  return line[paren + 2];
}

// True once every thread in `tids` was seen asleep in two consecutive scans.
bool WaitUntilAllAsleep(const std::vector<std::atomic<pid_t>>& tids, absl::Time deadline) {
  int consecutive = 0;
  while (absl::Now() < deadline) {
    bool all = true;
    for (const auto& tid : tids) {
      const pid_t t = tid.load();
      if (t == 0 || ThreadState(t) != 'S') {
        all = false;
        break;
      }
    }
    consecutive = all ? consecutive + 1 : 0;
    if (consecutive >= 2) return true;
    std::this_thread::yield();
  }
  return false;
}

AppendRequest OneRecord(const std::string& payload) {
  AppendRequest req;
  req.records.push_back({RecordKind::kTransaction, payload});
  return req;
}

TEST(GroupCommitTest, WritersQueuedBehindASyncCommitInOneGroup) {
  ScratchDir dir;
  auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
  auto opened = DurableLog::Open({.path = dir.path() + "/log", .file_system = fs});
  ASSERT_TRUE(opened.ok()) << opened.status();
  DurableLog& log = **opened;
  const uint64_t commits_before = log.stats().group_commits;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);

  fs->PauseSyncs();
  absl::StatusOr<uint64_t> a_result;
  std::thread a([&] { a_result = log.Append(OneRecord("A")); });
  ASSERT_TRUE(fs->WaitForPausedSyncs(1, deadline)) << "A never reached its sync";

  std::vector<std::atomic<pid_t>> tids(3);
  std::vector<absl::StatusOr<uint64_t>> results(3);
  std::vector<std::thread> queued;
  for (int i = 0; i < 3; ++i) {
    queued.emplace_back([&, i] {
      AppendRequest req = OneRecord(std::string(1, static_cast<char>('B' + i)));
      tids[i].store(CurrentThreadId());  // from here on, sleeping means waiting in Append
      results[i] = log.Append(std::move(req));
    });
  }
  const bool queued_ok = WaitUntilAllAsleep(tids, deadline);
  // While A's sync is held nothing can have committed.
  EXPECT_EQ(log.stats().group_commits, commits_before);
  fs->ResumeSyncs();
  a.join();
  for (auto& t : queued) t.join();
  ASSERT_TRUE(queued_ok) << "B, C and D never all waited in the queue";

  ASSERT_TRUE(a_result.ok()) << a_result.status();
  EXPECT_EQ(*a_result, 1u);
  std::vector<bool> seen(5, false);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    ASSERT_GE(*results[i], 2u);
    ASSERT_LE(*results[i], 4u);
    EXPECT_FALSE(seen[*results[i]]) << "two appends got sequence " << *results[i];
    seen[*results[i]] = true;
  }
  EXPECT_EQ(log.stats().group_commits - commits_before, 2u) << "want A alone, then B+C+D";
  EXPECT_EQ(log.stats().appended_records, 4u);
  auto records = ReadAll(log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 4u);
  EXPECT_EQ((*records)[0].payload, "A");
}

// The byte budget of a group is honoured: with a budget smaller than one record, the queued
// writers commit one by one.
TEST(GroupCommitTest, GroupStopsAtTheByteBudget) {
  ScratchDir dir;
  auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
  auto opened =
      DurableLog::Open({.path = dir.path() + "/log", .file_system = fs, .max_group_bytes = 1});
  ASSERT_TRUE(opened.ok()) << opened.status();
  DurableLog& log = **opened;
  const uint64_t commits_before = log.stats().group_commits;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);

  fs->PauseSyncs();
  std::thread a([&] { EXPECT_TRUE(log.Append(OneRecord("A")).ok()); });
  ASSERT_TRUE(fs->WaitForPausedSyncs(1, deadline));
  std::vector<std::atomic<pid_t>> tids(3);
  std::vector<std::thread> queued;
  for (int i = 0; i < 3; ++i) {
    queued.emplace_back([&, i] {
      AppendRequest req = OneRecord("queued");
      tids[i].store(CurrentThreadId());
      EXPECT_TRUE(log.Append(std::move(req)).ok());
    });
  }
  const bool queued_ok = WaitUntilAllAsleep(tids, deadline);
  fs->ResumeSyncs();
  a.join();
  for (auto& t : queued) t.join();
  ASSERT_TRUE(queued_ok);
  EXPECT_EQ(log.stats().group_commits - commits_before, 4u);
}

}  // namespace
}  // namespace ferry
