#include "engine/log/durable_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_until.h"

namespace ferry {
namespace {

using ::ferry::testing::WaitUntil;

class DurableLogTest : public ::testing::Test {
 protected:
  std::unique_ptr<DurableLog> OpenLog() {
    auto log = DurableLog::Open({.path = dir_ + "/log"});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  static AppendRequest Records(int n, const std::string& prefix) {
    AppendRequest req;
    for (int i = 0; i < n; ++i) {
      req.records.push_back({RecordKind::kTransaction, absl::StrCat(prefix, i)});
    }
    return req;
  }

  ::ferry::testing::TempDir tmp_{"ferry-log-test"};
  const std::string dir_ = tmp_.path();
};

// Issue #14: the bytes of the RPO and of the apply lag were a record count times an average
// since start (8.7 GB for 1,435 transactions). PayloadBytesFrom is exact for a known record set:
// sizes from 0 bytes to 3 MiB (past the index's 1 MiB and 64-record strides), for every start
// sequence, after appends from several threads, a trim and a reopen.
TEST_F(DurableLogTest, PayloadBytesFromIsExactForAKnownRecordSet) {
  std::vector<size_t> sizes;  // sizes[i]: record i + 1
  for (int i = 0; i < 300; ++i) {
    sizes.push_back(i % 97 == 5 ? (size_t{3} << 20) + i : static_cast<size_t>((i * 37) % 900));
  }
  auto check = [&](DurableLog& log) {
    const uint64_t first = log.first_seq(), next = log.next_seq();
    ASSERT_EQ(next, sizes.size() + 1);
    uint64_t expected = 0;
    for (uint64_t seq = next; seq-- > first;) {
      expected += sizes[seq - 1];
      auto bytes = log.PayloadBytesFrom(seq);
      ASSERT_TRUE(bytes.ok()) << bytes.status();
      ASSERT_EQ(*bytes, expected) << "from " << seq;
    }
    auto all = log.PayloadBytesFrom(0);  // clamped to first_seq
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(*all, expected);
    auto none = log.PayloadBytesFrom(next + 10);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none, 0u);
  };
  {
    auto log = OpenLog();
    // Appended in batches from two threads (group commits interleave them).
    std::vector<std::thread> writers;
    absl::Mutex order;
    size_t taken = 0;
    for (int t = 0; t < 2; ++t) {
      writers.emplace_back([&] {
        while (true) {
          absl::MutexLock lock(&order);  // sizes go in sequence order
          if (taken == sizes.size()) return;
          AppendRequest req;
          for (size_t k = 0; k < 7 && taken < sizes.size(); ++k, ++taken) {
            req.records.push_back({RecordKind::kTransaction, std::string(sizes[taken], 'x')});
          }
          ASSERT_TRUE(log->Append(std::move(req)).ok());
        }
      });
    }
    for (auto& w : writers) w.join();
    check(*log);
    ASSERT_TRUE(log->TrimBelow(131).ok());
    check(*log);
  }
  auto reopened = OpenLog();
  EXPECT_EQ(reopened->first_seq(), 131u);
  check(*reopened);
  ASSERT_TRUE(reopened->TrimBelow(250).ok());
  check(*reopened);
}

TEST_F(DurableLogTest, EmptyLogStartsAtOne) {
  auto log = OpenLog();
  EXPECT_EQ(log->next_seq(), 1u);
  EXPECT_EQ(log->first_seq(), 1u);
  auto records = log->Read(1, 10, 1 << 20);
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty());
}

// The receiver starts a new inbound log where the target's progress is (start_at): the log,
// its cursor and state move together, survive a reopen, and only an empty log may be started.
TEST_F(DurableLogTest, AnEmptyLogStartsFurtherOnAtomicallyWithItsCursorsAndState) {
  {
    auto log = OpenLog();
    AppendRequest start;
    start.start_at = 28486;
    start.cursors.emplace_back("applied", 28485);
    start.state.emplace_back("peer", "x");
    auto first = log->Append(std::move(start));
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(*first, 28486u);
    EXPECT_EQ(log->first_seq(), 28486u);
    EXPECT_EQ(log->next_seq(), 28486u);
    auto below = log->Read(1, 10, 1 << 20);
    EXPECT_EQ(below.status().code(), absl::StatusCode::kOutOfRange);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->first_seq(), 28486u);
  EXPECT_EQ(log->next_seq(), 28486u);
  EXPECT_EQ(log->GetCursor("applied")->value_or(0), 28485u);
  EXPECT_EQ(log->GetState("peer")->value_or(""), "x");
  AppendRequest records = Records(3, "r");
  records.expected_first_seq = 28486;
  auto first = log->Append(std::move(records));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 28486u);
  // A log that holds records, or a start below next_seq, is refused and nothing is written.
  for (uint64_t at : {uint64_t{40000}, uint64_t{2}}) {
    AppendRequest again = Records(1, "x");
    again.start_at = at;
    again.cursors.emplace_back("applied", 7);
    EXPECT_EQ(log->Append(std::move(again)).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(log->next_seq(), 28489u);
  EXPECT_EQ(log->GetCursor("applied")->value_or(0), 28485u);
}

// Started further on, the log counts and trims its records without being reopened first.
TEST_F(DurableLogTest, ALogStartedFurtherOnCountsAndTrimsWithoutAReopen) {
  auto log = OpenLog();
  AppendRequest start;
  start.start_at = 28486;
  ASSERT_TRUE(log->Append(std::move(start)).ok());
  AppendRequest more = Records(100, "abcd");  // payloads of 5 bytes (0-9), then 6 (10-99)
  more.expected_first_seq = 28486;
  ASSERT_TRUE(log->Append(std::move(more)).ok());
  auto bytes = log->PayloadBytesFrom(28486);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 10u * 5 + 90u * 6);
  auto from_middle = log->PayloadBytesFrom(28536);
  ASSERT_TRUE(from_middle.ok()) << from_middle.status();
  EXPECT_EQ(*from_middle, 50u * 6);
  ASSERT_TRUE(log->TrimBelow(28566).ok());
  EXPECT_EQ(log->first_seq(), 28566u);
  auto left = log->PayloadBytesFrom(28566);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(*left, 20u * 6);
}

TEST_F(DurableLogTest, AppendAssignsContiguousSequencesAndReadsBackInOrder) {
  auto log = OpenLog();
  auto first = log->Append(Records(3, "a"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1u);
  auto second = log->Append(Records(2, "b"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 4u);
  auto records = log->Read(1, 100, 1 << 20);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 5u);
  const char* want[] = {"a0", "a1", "a2", "b0", "b1"};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*records)[i].seq, static_cast<uint64_t>(i + 1));
    EXPECT_EQ((*records)[i].payload, want[i]);
    EXPECT_EQ((*records)[i].kind, RecordKind::kTransaction);
  }
}

// A record may borrow its bytes (the receiver's, from the batch it came in): the log stores the
// borrowed bytes, not the record's own payload, counts their size, and checks their limit.
TEST_F(DurableLogTest, BorrowedBytesAreStoredCountedAndLimited) {
  auto log = DurableLog::Open({.path = dir_ + "/borrowed", .max_record_bytes = 16});
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string buffer = "first|second-record|";
  AppendRequest req;
  req.records.push_back({.kind = RecordKind::kTransaction,
                         .payload = "ignored",
                         .borrowed = std::string_view(buffer).substr(0, 5)});
  req.records.push_back({RecordKind::kHeartbeat, "owned"});
  req.records.push_back(
      {.kind = RecordKind::kTransaction, .borrowed = std::string_view(buffer).substr(6, 13)});
  req.records.push_back(
      {.kind = RecordKind::kTransaction, .borrowed = std::string_view(buffer).substr(0, 0)});
  ASSERT_TRUE((*log)->Append(std::move(req)).ok());
  auto records = (*log)->Read(1, 100, 1 << 20);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 4u);
  EXPECT_EQ((*records)[0].payload, "first");
  EXPECT_EQ((*records)[1].payload, "owned");
  EXPECT_EQ((*records)[2].payload, "second-record");
  EXPECT_EQ((*records)[3].payload, "");
  auto bytes = (*log)->PayloadBytesFrom(1);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 5u + 5u + 13u);
  // The limit applies to the borrowed bytes: 17 of them are refused, whatever the payload holds.
  const std::string long_buffer(17, 'x');
  AppendRequest big;
  big.records.push_back({.kind = RecordKind::kTransaction, .borrowed = long_buffer});
  EXPECT_EQ((*log)->Append(std::move(big)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*log)->next_seq(), 5u);
}

TEST_F(DurableLogTest, ReadHonoursRecordAndByteLimits) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Append(Records(10, "xxxxxxxxx")).ok());  // 10-byte payloads
  auto by_count = log->Read(3, 4, 1 << 20);
  ASSERT_TRUE(by_count.ok());
  ASSERT_EQ(by_count->size(), 4u);
  EXPECT_EQ(by_count->front().seq, 3u);
  auto by_bytes = log->Read(1, 100, 25);  // stops once 25 bytes are reached: 3 records
  ASSERT_TRUE(by_bytes.ok());
  EXPECT_EQ(by_bytes->size(), 3u);
  auto at_least_one = log->Read(1, 100, 1);
  ASSERT_TRUE(at_least_one.ok());
  EXPECT_EQ(at_least_one->size(), 1u);
}

TEST_F(DurableLogTest, ReopenRecoversRecordsCursorsAndNextSequence) {
  {
    auto log = OpenLog();
    AppendRequest req = Records(7, "r");
    req.cursors.push_back({"captured", 4242});
    req.state.push_back({"snapshot/public.t", "done"});
    ASSERT_TRUE(log->Append(std::move(req)).ok());
  }
  auto log = OpenLog();
  EXPECT_EQ(log->next_seq(), 8u);
  auto cursor = log->GetCursor("captured");
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->value_or(0), 4242u);
  auto state = log->GetState("snapshot/public.t");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->value_or(""), "done");
  auto missing = log->GetCursor("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto next = log->Append(Records(1, "after"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 8u);
}

TEST_F(DurableLogTest, TrimRemovesRecordsBelowAndSurvivesReopen) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Append(Records(10, "t")).ok());
    ASSERT_TRUE(log->TrimBelow(6).ok());
    EXPECT_EQ(log->first_seq(), 6u);
    auto trimmed = log->Read(5, 10, 1 << 20);
    EXPECT_EQ(trimmed.status().code(), absl::StatusCode::kOutOfRange);
    auto rest = log->Read(6, 10, 1 << 20);
    ASSERT_TRUE(rest.ok());
    ASSERT_EQ(rest->size(), 5u);
    EXPECT_EQ(rest->front().payload, "t5");
    ASSERT_TRUE(log->TrimBelow(3).ok());  // below the current start: no-op
    EXPECT_EQ(log->first_seq(), 6u);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->first_seq(), 6u);
  EXPECT_EQ(log->next_seq(), 11u);
}

TEST_F(DurableLogTest, TrimEverythingKeepsSequenceGoing) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Append(Records(4, "t")).ok());
    ASSERT_TRUE(log->TrimBelow(100).ok());  // clamped to next_seq
    EXPECT_EQ(log->first_seq(), 5u);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->next_seq(), 5u);
  auto seq = log->Append(Records(1, "n"));
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 5u);
}

// A rejoin drops a former primary's records its peer never received (docs/operations.md): the
// next append takes their place, the byte count forgets them, and a reopen agrees.
TEST_F(DurableLogTest, DropFromRemovesTheTailDurably) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Append(Records(10, "t")).ok());
    ASSERT_TRUE(log->TrimBelow(3).ok());
    EXPECT_EQ(log->DropFrom(2).code(), absl::StatusCode::kOutOfRange);  // trimmed
    ASSERT_TRUE(log->DropFrom(7).ok());
    EXPECT_EQ(log->next_seq(), 7u);
    ASSERT_TRUE(log->DropFrom(9).ok());  // past the end: nothing to drop
    EXPECT_EQ(log->next_seq(), 7u);
    auto bytes = log->PayloadBytesFrom(3);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(*bytes, 4u * 2);  // t2..t5
    auto seq = log->Append(Records(1, "n"));
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 7u);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->first_seq(), 3u);
  EXPECT_EQ(log->next_seq(), 8u);
  auto rest = log->Read(3, 10, 1 << 20);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 5u);
  EXPECT_EQ(rest->back().payload, "n0");
  // Everything retained dropped: the sequence still goes on from there.
  ASSERT_TRUE(log->DropFrom(3).ok());
  EXPECT_EQ(log->next_seq(), 3u);
  log.reset();
  log = OpenLog();
  EXPECT_EQ(log->first_seq(), 3u);
  EXPECT_EQ(log->next_seq(), 3u);
}

TEST_F(DurableLogTest, CursorOnlyAppendWritesNoRecords) {
  auto log = OpenLog();
  ASSERT_TRUE(log->SetCursor("acked", 9).ok());
  EXPECT_EQ(log->next_seq(), 1u);
  EXPECT_EQ(log->GetCursor("acked")->value_or(0), 9u);
}

TEST_F(DurableLogTest, ExpectedFirstSequenceMismatchAppendsNothing) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Append(Records(2, "a")).ok());
  AppendRequest wrong = Records(2, "b");
  wrong.expected_first_seq = 7;
  wrong.cursors.push_back({"received", 8});
  auto result = log->Append(std::move(wrong));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(log->next_seq(), 3u);
  EXPECT_FALSE(log->GetCursor("received")->has_value());  // the cursor went with the records
  AppendRequest right = Records(1, "c");
  right.expected_first_seq = 3;
  auto ok = log->Append(std::move(right));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3u);
}

TEST_F(DurableLogTest, OversizedAndUnknownKindRecordsAreRefused) {
  auto log = DurableLog::Open({.path = dir_ + "/small", .max_record_bytes = 16});
  ASSERT_TRUE(log.ok());
  AppendRequest big;
  big.records.push_back({RecordKind::kTransaction, std::string(17, 'x')});
  EXPECT_EQ((*log)->Append(std::move(big)).status().code(), absl::StatusCode::kInvalidArgument);
  AppendRequest unknown;
  unknown.records.push_back({static_cast<RecordKind>(99), "x"});
  EXPECT_EQ((*log)->Append(std::move(unknown)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*log)->next_seq(), 1u);
}

TEST_F(DurableLogTest, ConcurrentWritersAreGroupedAndEachAppendStaysContiguous) {
  auto log = OpenLog();
  constexpr int kThreads = 4, kAppends = 200, kPerAppend = 3;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        AppendRequest req;
        for (int j = 0; j < kPerAppend; ++j) {
          req.records.push_back({RecordKind::kTransaction, absl::StrCat(t, ":", i, ":", j)});
        }
        auto seq = log->Append(std::move(req));
        ASSERT_TRUE(seq.ok()) << seq.status();
      }
    });
  }
  for (auto& th : threads) th.join();
  auto records = log->Read(1, 1 << 20, 1 << 30);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), static_cast<size_t>(kThreads * kAppends * kPerAppend));
  // Each append's records are adjacent and in order; each writer's appends are in order.
  std::vector<int> next_append(kThreads, 0);
  for (size_t k = 0; k < records->size(); k += kPerAppend) {
    int t, i, j;
    ASSERT_EQ(sscanf((*records)[k].payload.c_str(), "%d:%d:%d", &t, &i, &j), 3);
    EXPECT_EQ(i, next_append[t]++);
    for (int m = 0; m < kPerAppend; ++m) {
      EXPECT_EQ((*records)[k + m].payload, absl::StrCat(t, ":", i, ":", m));
    }
  }
}

TEST_F(DurableLogTest, WaitForRecordWakesOnAppendAndOnClose) {
  auto log = OpenLog();
  std::thread writer([&] { ASSERT_TRUE(log->Append(Records(1, "w")).ok()); });
  EXPECT_TRUE(log->WaitForRecord(1, absl::InfiniteFuture()));
  writer.join();
  std::thread closer([&] { log->Close(); });
  EXPECT_FALSE(log->WaitForRecord(2, absl::InfiniteFuture()));
  closer.join();
  EXPECT_EQ(log->Append(Records(1, "x")).status().code(), absl::StatusCode::kUnavailable);
}

// A reader told to stop is woken from its wait without a record, and the log goes on.
TEST_F(DurableLogTest, WakeWaitersEndsAWaitInProgressWithoutARecord) {
  auto log = OpenLog();
  std::atomic<bool> waited{false};
  std::atomic<bool> found{true};
  std::thread waiter([&] {
    found = log->WaitForRecord(1, absl::InfiniteFuture());
    waited = true;
  });
  // The waiter may not be waiting yet when a wake-up comes: wake until it returns.
  const bool woken = WaitUntil([&] {
    log->WakeWaiters();
    return waited.load();
  });
  ASSERT_TRUE(log->Append(Records(1, "w")).ok());  // frees a waiter that was not woken
  waiter.join();
  EXPECT_TRUE(woken) << "the wait did not end at the wake-up";
  EXPECT_FALSE(found.load());
  EXPECT_TRUE(log->WaitForRecord(1, absl::InfiniteFuture()));
}

// A waiter that read wakeups() before checking its stop, then waits after the wake-up came: the
// wait ends at once (otherwise a stop between the check and the wait would be waited out).
TEST_F(DurableLogTest, AWakeUpBeforeTheWaitEndsAWaitThatReadTheWakeUpsBeforeIt) {
  auto log = OpenLog();
  const uint64_t seen = log->wakeups();
  log->WakeWaiters();
  std::atomic<bool> waited{false};
  std::atomic<bool> found{true};
  std::thread waiter([&] {
    found = log->WaitForRecord(1, absl::InfiniteFuture(), *Clock::Real(), seen);
    waited = true;
  });
  const bool ended = WaitUntil([&] { return waited.load(); });
  ASSERT_TRUE(log->Append(Records(1, "w")).ok());  // frees a waiter that did not end
  waiter.join();
  EXPECT_TRUE(ended) << "the wait missed the wake-up that came before it";
  EXPECT_FALSE(found.load());
}

// A deadline on a ManualClock: the wait ends once the clock is past it, an append still wakes
// it at once, and a clock that never moves cannot hang the caller (who loops and re-checks).
TEST_F(DurableLogTest, WaitForRecordOnAnInjectedClock) {
  auto log = OpenLog();
  ManualClock clock(absl::FromUnixSeconds(100));
  EXPECT_FALSE(log->WaitForRecord(1, clock.Now() - absl::Seconds(1), clock));
  const absl::Time start = absl::Now();
  EXPECT_FALSE(log->WaitForRecord(1, clock.Now() + absl::Hours(1), clock));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // one poll interval of real time
  std::thread writer([&] { ASSERT_TRUE(log->Append(Records(1, "w")).ok()); });
  while (!log->WaitForRecord(1, clock.Now() + absl::Hours(1), clock)) {
  }
  writer.join();
  EXPECT_TRUE(log->WaitForRecord(1, clock.Now() - absl::Seconds(1), clock));
}

}  // namespace
}  // namespace ferry
