// Power loss: the fault file system drops everything that was not synced, as a machine that loses
// power does, and the log must come back with every acknowledged (synced) append, in order,
// nothing partial, and keep appending with contiguous sequence numbers.
#include <gtest/gtest.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "engine/log/durable_log.h"
#include "engine/log/fault_injection_fs.h"
#include "engine/log/tests/log_test_support.h"

namespace ferry {
namespace {

using log_testing::ReadAll;
using log_testing::ScratchDir;

class PowerLossTest : public ::testing::Test {
 protected:
  std::unique_ptr<DurableLog> Open(bool sync) {
    auto log = DurableLog::Open({.path = dir_.path() + "/log", .sync = sync, .file_system = fs_});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // Cuts the power under `log`: nothing its shutdown writes reaches the disk, and everything
  // not synced before is lost.
  void PowerLoss(std::unique_ptr<DurableLog>& log) {
    fs_->SetFrozen(true);
    log.reset();
    auto dropped = fs_->DropUnsyncedData();
    ASSERT_TRUE(dropped.ok()) << dropped;
    fs_->SetFrozen(false);
  }

  ScratchDir dir_;
  std::shared_ptr<FaultInjectionFileSystem> fs_ =
      std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
};

AppendRequest Numbered(int first, int count) {
  AppendRequest req;
  for (int i = first; i < first + count; ++i) {
    req.records.push_back({RecordKind::kTransaction, absl::StrCat("record-", i)});
  }
  req.cursors.push_back({"last", static_cast<uint64_t>(first + count - 1)});
  return req;
}

TEST_F(PowerLossTest, SyncedAppendsSurviveAndUnsyncedOnesAreDropped) {
  int n = 0;
  auto log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 20; ++i, n += 3) ASSERT_TRUE(log->Append(Numbered(n, 3)).ok());
  const int synced = n;
  log.reset();  // a clean shutdown

  log = Open(/*sync=*/false);
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 20; ++i, n += 3) ASSERT_TRUE(log->Append(Numbered(n, 3)).ok());
  EXPECT_EQ(log->next_seq(), static_cast<uint64_t>(n + 1));
  PowerLoss(log);

  log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  // The model drops what was never synced; if it did not, this test would prove nothing.
  EXPECT_EQ(log->next_seq(), static_cast<uint64_t>(synced + 1));
  auto records = ReadAll(*log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), static_cast<size_t>(synced));
  for (int i = 0; i < synced; ++i) {
    EXPECT_EQ((*records)[i].seq, static_cast<uint64_t>(i + 1));
    EXPECT_EQ((*records)[i].payload, absl::StrCat("record-", i));
  }
  auto last = log->GetCursor("last");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, std::optional<uint64_t>(synced - 1));  // the cursor went back with the records

  // The log goes on where the durable part ended.
  auto seq = log->Append(Numbered(1000, 2));
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, static_cast<uint64_t>(synced + 1));
  PowerLoss(log);
  log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  records = ReadAll(*log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), static_cast<size_t>(synced + 2));
  EXPECT_EQ(records->back().payload, "record-1001");
}

// A fresh database whose first files were never made durable disappears entirely; reopening
// gives an empty, usable log (never a half-initialised one).
TEST_F(PowerLossTest, PowerLossRightAfterCreationLeavesAUsableLog) {
  auto log = Open(/*sync=*/false);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append(Numbered(0, 5)).ok());
  PowerLoss(log);
  log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  auto seq = log->Append(Numbered(0, 1));
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 1u);  // the five unsynced records are gone
  auto records = ReadAll(*log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_FALSE(records->empty());
  EXPECT_EQ(records->back().payload, "record-0");
  EXPECT_EQ(records->back().seq, *seq);
}

// ---------------------------------------------------------------------------------------------
// Randomized: rounds of concurrent appends (sync on or off), trims, clean shutdowns and power
// cuts at random moments, checked against an oracle of what each writer was told.

struct AppendAttempt {
  int writer = 0;
  int records = 0;
  bool durable = false;               // acknowledged by a log opened with sync = true
  std::optional<uint64_t> first_seq;  // what Append() returned, when it succeeded
};

// Payload of record `index` of append `id`: self-describing, with a filler derived from the id
// so that any mix-up of bytes shows.
std::string Payload(uint64_t id, int writer, int index, int count, size_t filler) {
  std::string p = absl::StrCat(id, ":", writer, ":", index, ":", count, ":");
  for (size_t i = 0; i < filler; ++i) p.push_back(static_cast<char>('a' + (id + i) % 26));
  return p;
}

struct ParsedPayload {
  uint64_t id;
  int writer, index, count;
};

std::optional<ParsedPayload> Parse(const std::string& payload) {
  std::vector<absl::string_view> parts = absl::StrSplit(payload, absl::MaxSplits(':', 4));
  if (parts.size() != 5) return std::nullopt;
  ParsedPayload p;
  if (!absl::SimpleAtoi(parts[0], &p.id) || !absl::SimpleAtoi(parts[1], &p.writer) ||
      !absl::SimpleAtoi(parts[2], &p.index) || !absl::SimpleAtoi(parts[3], &p.count)) {
    return std::nullopt;
  }
  if (Payload(p.id, p.writer, p.index, p.count, parts[4].size()) != payload) return std::nullopt;
  return p;
}

TEST_F(PowerLossTest, RandomizedWorkloadsKeepEveryAcknowledgedAppend) {
  const uint64_t seed = log_testing::TestSeed("RandomizedWorkloadsKeepEveryAcknowledgedAppend");
  std::mt19937_64 rng(seed);
  constexpr int kRounds = 24;
  constexpr int kMaxWriters = 3;

  absl::Mutex mu;
  std::map<uint64_t, AppendAttempt> attempts;  // by append id; guarded by mu
  std::atomic<uint64_t> next_id{1};
  int power_losses = 0;

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    const bool sync = rng() % 4 != 0;
    const int writers = 1 + static_cast<int>(rng() % kMaxWriters);
    const int appends_per_writer = 5 + static_cast<int>(rng() % 40);
    const int ending = static_cast<int>(rng() % 3);  // 0 clean, 1 power loss after, 2 during
    const int cut_after_acks = static_cast<int>(rng() % (writers * appends_per_writer));

    auto log = Open(sync);
    ASSERT_NE(log, nullptr);
    std::atomic<int> acks{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w, thread_seed = rng()] {
        std::mt19937_64 trng(thread_seed);
        for (int a = 0; a < appends_per_writer && !stop.load(); ++a) {
          const uint64_t id = next_id.fetch_add(1);
          const int count = 1 + static_cast<int>(trng() % 8);
          AppendRequest req;
          for (int i = 0; i < count; ++i) {
            req.records.push_back(
                {RecordKind::kTransaction, Payload(id, w, i, count, trng() % 2000)});
          }
          req.cursors.push_back({absl::StrCat("writer/", w), id});
          {
            absl::MutexLock lock(&mu);
            attempts[id] = AppendAttempt{.writer = w, .records = count};
          }
          auto seq = log->Append(std::move(req));
          if (!seq.ok()) break;  // only after the power was cut
          {
            absl::MutexLock lock(&mu);
            attempts[id].first_seq = *seq;
            attempts[id].durable = sync;
          }
          acks.fetch_add(1);
        }
      });
    }
    if (ending == 2) {
      // Cut the power while writers are appending.
      while (acks.load() < cut_after_acks) std::this_thread::yield();
      fs_->SetFrozen(true);
      stop.store(true);
    }
    if (rng() % 3 == 0) {
      const uint64_t next = log->next_seq();
      (void)log->TrimBelow(next - std::min<uint64_t>(next - 1, rng() % 50));
    }
    for (auto& t : threads) t.join();
    if (ending == 0) {
      log.reset();
    } else {
      ++power_losses;
      PowerLoss(log);
    }

    // Reboot and check against the oracle.
    log = Open(/*sync=*/true);
    ASSERT_NE(log, nullptr);
    auto records = ReadAll(*log);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(log->next_seq(), records->empty() ? log->first_seq() : records->back().seq + 1);

    absl::MutexLock lock(&mu);
    std::map<uint64_t, uint64_t> present;  // append id -> first seq found
    std::map<int, uint64_t> last_id_of_writer;
    for (size_t i = 0; i < records->size();) {
      const LogRecord& first = (*records)[i];
      auto p = Parse(first.payload);
      ASSERT_TRUE(p.has_value()) << "record " << first.seq << " is not one we wrote";
      // A record at the log's low end may be the tail of a batch partly trimmed away.
      const bool cut_by_trim = first.seq == log->first_seq() && p->index > 0;
      ASSERT_TRUE(p->index == 0 || cut_by_trim) << "record " << first.seq << " starts mid-batch";
      auto attempt = attempts.find(p->id);
      ASSERT_NE(attempt, attempts.end()) << "append " << p->id << " was never made";
      ASSERT_EQ(attempt->second.records, p->count);
      ASSERT_EQ(attempt->second.writer, p->writer);
      for (int k = p->index; k < p->count; ++k, ++i) {
        ASSERT_LT(i, records->size()) << "append " << p->id << " is partial";
        auto q = Parse((*records)[i].payload);
        ASSERT_TRUE(q.has_value() && q->id == p->id && q->index == k)
            << "append " << p->id << " is partial or interleaved at seq " << (*records)[i].seq;
      }
      if (!cut_by_trim) {
        ASSERT_TRUE(present.emplace(p->id, first.seq).second) << "append " << p->id << " twice";
        if (attempt->second.first_seq.has_value()) {
          EXPECT_EQ(*attempt->second.first_seq, first.seq) << "append " << p->id << " moved";
        }
      }
      auto& last = last_id_of_writer[p->writer];
      EXPECT_LT(last, p->id) << "writer " << p->writer << "'s appends out of order";
      last = p->id;
    }
    // Every durable acknowledgement that is not trimmed away is there.
    for (const auto& [id, attempt] : attempts) {
      if (!attempt.durable || *attempt.first_seq < log->first_seq()) continue;
      EXPECT_TRUE(present.contains(id))
          << "acknowledged append " << id << " at seq " << *attempt.first_seq << " was lost";
    }
    // Cursors were written in the same batch as the records.
    for (const auto& [writer, id] : last_id_of_writer) {
      auto cursor = log->GetCursor(absl::StrCat("writer/", writer));
      ASSERT_TRUE(cursor.ok());
      EXPECT_EQ(*cursor, std::optional<uint64_t>(id)) << "writer " << writer;
    }
    // Forget what is gone: those ids never come back, their sequences will be reused.
    for (auto it = attempts.begin(); it != attempts.end();) {
      const bool gone = !present.contains(it->first) && (!it->second.first_seq.has_value() ||
                                                         *it->second.first_seq >= log->next_seq());
      if (gone) {
        ASSERT_FALSE(it->second.durable) << "append " << it->first;
        it = attempts.erase(it);
      } else {
        ++it;
      }
    }
    if (HasFatalFailure() || HasFailure()) break;
  }
  EXPECT_GT(power_losses, 0);
}

// Power cut while writers wait in a group commit: every writer either got OK (and its records
// survive) or an error, and the log is a clean prefix after the reboot.
TEST_F(PowerLossTest, PowerCutDuringSyncFailsTheWholeGroup) {
  auto log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  ASSERT_TRUE(log->Append(Numbered(0, 4)).ok());
  fs_->PauseSyncs();
  std::thread leader([&] { EXPECT_FALSE(log->Append(Numbered(100, 2)).ok()); });
  ASSERT_TRUE(fs_->WaitForPausedSyncs(1, absl::Now() + absl::Seconds(30)));
  fs_->SetFrozen(true);  // the data of the paused sync is written but will not be synced
  fs_->ResumeSyncs();
  leader.join();
  EXPECT_FALSE(log->Append(Numbered(200, 1)).ok());  // sticky: nothing after the failure
  PowerLoss(log);
  log = Open(/*sync=*/true);
  ASSERT_NE(log, nullptr);
  auto records = ReadAll(*log);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 4u);
  EXPECT_EQ(records->back().payload, "record-3");
  auto seq = log->Append(Numbered(300, 1));
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 5u);
}

}  // namespace
}  // namespace ferry
