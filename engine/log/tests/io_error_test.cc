// I/O errors and a full disk under the durable log: the failing Append reports an error, the log
// refuses every later append while the fault lasts (an unsynced tail may be lost, and appending
// past it would leave a gap), and a reopen recovers everything acknowledged before the error.
// Once the fault is gone the log comes back by itself at the next append (it reopens its
// database in place), and what it serves then survives a reopen and a power loss. The full disk
// on a real file system: disk_space_test.cc.
#include <gtest/gtest.h>
#include <rocksdb/file_system.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/log/durable_log.h"
#include "engine/log/fault_injection_fs.h"
#include "engine/log/tests/log_test_support.h"

namespace ferry {
namespace {

using log_testing::ReadAll;
using log_testing::ScratchDir;

AppendRequest Records(const std::string& prefix, int count, size_t size = 0) {
  AppendRequest req;
  for (int i = 0; i < count; ++i) {
    std::string payload = absl::StrCat(prefix, i);
    payload.resize(std::max(payload.size(), size), '.');
    req.records.push_back({RecordKind::kTransaction, std::move(payload)});
  }
  req.cursors.push_back({"appended", static_cast<uint64_t>(count)});
  return req;
}

struct Fault {
  const char* name;
  std::function<void(FaultInjectionFileSystem&, bool on)> set;
};

void PrintTo(const Fault& fault, std::ostream* os) { *os << fault.name; }

class IoErrorTest : public ::testing::TestWithParam<Fault> {
 protected:
  std::unique_ptr<DurableLog> Open() {
    auto log = DurableLog::Open({.path = dir_.path() + "/log",
                                 .file_system = fs_,
                                 .resume_interval = absl::ZeroDuration()});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // Appends 3 acknowledged batches of 4, then one that meets the fault. Returns the log.
  std::unique_ptr<DurableLog> AppendUntilFault() {
    auto log = Open();
    if (log == nullptr) return nullptr;
    for (int b = 0; b < 3; ++b) {
      auto seq = log->Append(Records(absl::StrCat("ok", b, "-"), 4));
      EXPECT_TRUE(seq.ok()) << seq.status();
    }
    GetParam().set(*fs_, true);
    auto failed = log->Append(Records("failed-", 4, 512));
    EXPECT_FALSE(failed.ok()) << GetParam().name << " did not fail the append";
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
    EXPECT_EQ(log->next_seq(), 13u);  // nothing of the failed append is visible

    // While the fault lasts the log refuses appends, and says why.
    auto during = log->Append(Records("during-", 1));
    EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
    EXPECT_FALSE(log->stats().write_error.empty());
    // With the fault gone the next append reopens the log in place and goes on: at 13, or at 17
    // when the failed append had reached the WAL in full (a failed sync) and came back whole.
    GetParam().set(*fs_, false);
    auto after = log->Append(Records("after-", 1));
    EXPECT_TRUE(after.ok()) << after.status();
    if (after.ok()) {
      EXPECT_TRUE(*after == 13u || *after == 17u) << *after;
    }
    EXPECT_EQ(log->stats().resumes, 1u);
    EXPECT_TRUE(log->stats().write_error.empty());
    // What the log serves now: the acknowledged records, maybe the failed batch whole, the one
    // after. Exactly this must survive a reopen and a power loss.
    auto records = ReadAll(*log);
    EXPECT_TRUE(records.ok()) << records.status();
    uint64_t bytes = 0;
    if (records.ok()) {
      for (const LogRecord& r : *records) {
        served_.push_back(r.payload);
        bytes += r.payload.size();
      }
    }
    // The byte figures (status, metrics) count the failed batch when it came back.
    auto counted = log->PayloadBytesFrom(1);
    EXPECT_TRUE(counted.ok()) << counted.status();
    if (counted.ok()) {
      EXPECT_EQ(*counted, bytes);
    }
    ExpectServed(*log);
    return log;
  }

  // The 12 acknowledged records, then maybe the failed batch in full (never part of it), then
  // the append after the fault: what the log served before.
  void ExpectServed(DurableLog& log) {
    auto records = ReadAll(log);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), served_.size());
    ASSERT_TRUE(served_.size() == 13 || served_.size() == 17) << served_.size();
    for (int i = 0; i < 12; ++i) {
      EXPECT_EQ((*records)[i].seq, static_cast<uint64_t>(i + 1));
      EXPECT_EQ((*records)[i].payload, absl::StrCat("ok", i / 4, "-", i % 4));
    }
    for (size_t i = 12; i + 1 < served_.size(); ++i) {
      EXPECT_EQ((*records)[i].payload.substr(0, 8), absl::StrCat("failed-", i - 12));
    }
    EXPECT_EQ(records->back().payload, "after-0");
    for (size_t i = 0; i < served_.size(); ++i) EXPECT_EQ((*records)[i].payload, served_[i]);
  }

  ScratchDir dir_;
  std::vector<std::string> served_;  // payloads the log served once the fault was gone
  std::shared_ptr<FaultInjectionFileSystem> fs_ =
      std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
};

TEST_P(IoErrorTest, ReopenRecoversAcknowledgedAppendsAndContinues) {
  auto log = AppendUntilFault();
  ASSERT_NE(log, nullptr);
  log.reset();
  log = Open();
  ASSERT_NE(log, nullptr);
  ExpectServed(*log);
  const uint64_t next = log->next_seq();
  auto seq = log->Append(Records("later-", 2));
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, next);
  auto records = ReadAll(*log);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->back().payload, "later-1");
  EXPECT_EQ(records->back().seq, next + 1);
}

TEST_P(IoErrorTest, PowerLossAfterTheFaultKeepsExactlyTheAcknowledgedAppends) {
  auto log = AppendUntilFault();
  ASSERT_NE(log, nullptr);
  fs_->SetFrozen(true);
  log.reset();
  auto dropped = fs_->DropUnsyncedData();
  ASSERT_TRUE(dropped.ok()) << dropped;
  fs_->SetFrozen(false);
  log = Open();
  ASSERT_NE(log, nullptr);
  ExpectServed(*log);
  auto seq = log->Append(Records("later-", 1));
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 1u + served_.size());
}

INSTANTIATE_TEST_SUITE_P(
    Faults, IoErrorTest,
    ::testing::Values(
        Fault{"SyncError", [](FaultInjectionFileSystem& fs, bool on) { fs.SetSyncError(on); }},
        Fault{"WriteError", [](FaultInjectionFileSystem& fs, bool on) { fs.SetWriteError(on); }},
        // Room for a few hundred bytes: the failed batch's WAL record is cut in the middle.
        Fault{"DiskFull",
              [](FaultInjectionFileSystem& fs, bool on) {
                fs.SetFreeSpace(on ? std::optional<uint64_t>(300) : std::nullopt);
              }}),
    [](const ::testing::TestParamInfo<Fault>& param) { return std::string(param.param.name); });

// A full disk met by a stream of appends: whatever was acknowledged is there after a reopen.
TEST(DiskFullTest, AppendsUntilTheDiskIsFullThenRecoverEverythingAcknowledged) {
  ScratchDir dir;
  auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
  auto log = DurableLog::Open({.path = dir.path() + "/log", .file_system = fs});
  ASSERT_TRUE(log.ok()) << log.status();
  fs->SetFreeSpace(64 << 10);
  uint64_t acknowledged = 0;
  absl::Status error;
  for (int i = 0; i < 10000 && error.ok(); ++i) {
    auto seq = (*log)->Append(Records(absl::StrCat("r", i, "-"), 3, 100));
    if (seq.ok()) {
      acknowledged = *seq + 2;
    } else {
      error = seq.status();
    }
  }
  ASSERT_FALSE(error.ok()) << "64 KiB of free space never ran out";
  EXPECT_EQ(error.code(), absl::StatusCode::kUnavailable) << error;
  EXPECT_GT(acknowledged, 0u);
  log->reset();
  fs->SetFreeSpace(std::nullopt);
  log = DurableLog::Open({.path = dir.path() + "/log", .file_system = fs});
  ASSERT_TRUE(log.ok()) << log.status();
  auto records = ReadAll(**log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_GE(records->size(), acknowledged);
  for (uint64_t seq = 1; seq <= acknowledged; ++seq) {
    const int batch = static_cast<int>((seq - 1) / 3), index = static_cast<int>((seq - 1) % 3);
    ASSERT_EQ((*records)[seq - 1].payload.substr(0, absl::StrCat("r", batch, "-", index).size()),
              absl::StrCat("r", batch, "-", index));
  }
  EXPECT_EQ(records->size() % 3, 0u) << "a batch is partly there";
  EXPECT_TRUE((*log)->Append(Records("more-", 1)).ok());
}

}  // namespace
}  // namespace ferry
