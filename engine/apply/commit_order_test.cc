// The commit order without a target: turns, dependencies, rounds, holds and in-flight limits.
// Each test drives the reader's and the workers' calls by hand, on threads where a call must
// block: the test waits until the order counts that many blocked threads (blocked()), then
// checks that the call has not returned (its flag is unset).
#include "engine/apply/commit_order.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace ferry {
namespace {

ApplyGroupPtr Group(uint64_t id, uint64_t last_seq, uint64_t wait_for = 0) {
  auto g = std::make_shared<ApplyGroup>();
  g->id = id;
  g->first_seq = last_seq;
  g->last_seq = last_seq;
  g->wait_for = wait_for;
  g->bytes = 10;
  return g;
}

// Waits (bounded) until `n` threads are blocked in the order.
void WaitBlocked(const CommitOrder& order, int n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (order.blocked() < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_GE(order.blocked(), n) << "the call never blocked";
}

// Dispatches `group` as the reader thread does.
void Dispatch(CommitOrder& order, ApplyGroupPtr group) {
  ASSERT_TRUE(order.WaitForSlot());
  order.Enqueue(std::move(group));
}

TEST(CommitOrderTest, GroupsCommitInLogOrderAndMoveTheProgress) {
  CommitOrder order({.workers = 2});
  order.StartRound(/*applied_seq=*/10, /*next_group_id=*/1);
  Dispatch(order, Group(1, 11));
  Dispatch(order, Group(2, 12));
  ApplyGroupPtr first = order.Take();
  ApplyGroupPtr second = order.Take();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  bool in_line = false;
  ASSERT_TRUE(order.WaitUntilReady(*second, &in_line));
  EXPECT_FALSE(in_line);  // group 1 has not committed
  std::atomic<bool> second_turn{false};
  std::thread t([&] {
    EXPECT_TRUE(order.WaitForTurn(*second));
    second_turn = true;
  });
  WaitBlocked(order, 1);
  EXPECT_FALSE(second_turn.load());  // waits for group 1
  ASSERT_TRUE(order.WaitUntilReady(*first, &in_line));
  EXPECT_TRUE(in_line);
  EXPECT_EQ(order.Committed(first), nullptr);
  t.join();
  EXPECT_TRUE(second_turn.load());
  EXPECT_EQ(order.snapshot().applied_seq, 11u);
  EXPECT_EQ(order.Committed(second), nullptr);
  EXPECT_EQ(order.snapshot().applied_seq, 12u);
  EXPECT_TRUE(order.Idle());
  EXPECT_TRUE(order.WaitForApplied(12, absl::ZeroDuration()));
}

// A group that depends on one in flight is not taken; the worker committing the dependency
// takes it over (the chain stays on one worker).
TEST(CommitOrderTest, TheWorkerThatCommitsADependencyTakesTheGroupWaitingForIt) {
  CommitOrder order({.workers = 2});
  order.StartRound(0, 1);
  Dispatch(order, Group(1, 1));
  Dispatch(order, Group(2, 2, /*wait_for=*/1));
  ApplyGroupPtr first = order.Take();
  std::atomic<bool> taken{false};
  std::thread idle_worker([&] {
    ApplyGroupPtr g = order.Take();  // null on Stop()
    taken = g != nullptr;
  });
  WaitBlocked(order, 1);
  bool in_line = false;
  ASSERT_TRUE(order.WaitUntilReady(*first, &in_line));
  ApplyGroupPtr next = order.Committed(first);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->id, 2u);
  order.Stop();
  idle_worker.join();
  EXPECT_FALSE(taken.load());
}

// The first failure of a round runs the round-over callback once (the scheduler wakes its reader
// with it); a later failure of the same round, or one of an ended round, does not.
TEST(CommitOrderTest, TheFirstFailureOfARoundRunsTheRoundOverCallbackOnce) {
  int calls = 0;
  CommitOrder* seen = nullptr;
  // Outside the order's lock, with the failure visible: RoundOver() takes the lock.
  CommitOrder order({.workers = 2}, [&] {
    ++calls;
    EXPECT_TRUE(seen->RoundOver());
  });
  seen = &order;
  order.StartRound(0, 1);
  Dispatch(order, Group(1, 1));
  Dispatch(order, Group(2, 2));
  ApplyGroupPtr first = order.Take();
  ApplyGroupPtr second = order.Take();
  EXPECT_EQ(calls, 0);
  order.ReportFailure(absl::UnavailableError("second"), std::nullopt, *second);
  EXPECT_EQ(calls, 1);
  order.ReportFailure(absl::AbortedError("first"), std::nullopt, *first);  // an earlier group
  EXPECT_EQ(calls, 1);
  order.Release();
  order.Release();
  EXPECT_TRUE(order.EndRound());
  order.ReportFailure(absl::UnavailableError("late"), std::nullopt, *second);  // ended round
  EXPECT_EQ(calls, 1);
  ASSERT_NE(order.TakeFailure(), nullptr);
  order.StartRound(0, 3);
  Dispatch(order, Group(3, 1));
  ApplyGroupPtr again = order.Take();
  order.ReportFailure(absl::UnavailableError("next round"), std::nullopt, *again);
  EXPECT_EQ(calls, 2);
  order.Release();
  order.Stop();
}

// A failure ends the round: workers learn it at their next wait, EndRound returns once none
// holds a group, the earliest failed group wins, and a late report of the old round is ignored.
TEST(CommitOrderTest, AFailureEndsTheRoundAndTheEarliestFailureWins) {
  CommitOrder order({.workers = 2});
  order.StartRound(0, 1);
  Dispatch(order, Group(1, 1));
  Dispatch(order, Group(2, 2));
  ApplyGroupPtr first = order.Take();
  ApplyGroupPtr second = order.Take();
  order.ReportFailure(absl::UnavailableError("second"), std::nullopt, *second);
  order.ReportFailure(absl::AbortedError("first"), std::nullopt, *first);
  order.ReportFailure(absl::UnavailableError("later"), std::nullopt, *second);
  EXPECT_TRUE(order.RoundOver());
  EXPECT_FALSE(order.WaitForSlot());
  std::atomic<bool> ended{false};
  std::thread reader([&] {
    EXPECT_TRUE(order.EndRound());
    ended = true;
  });
  EXPECT_FALSE(order.WaitForTurn(*second));  // its round ended
  order.Release();
  WaitBlocked(order, 1);
  EXPECT_FALSE(ended.load());                                   // `first` is still held
  const absl::Time deadline = absl::Now() + absl::Seconds(30);  // bounded poll
  while (order.RoundLive(first->generation) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_FALSE(order.RoundLive(first->generation));
  bool in_line = false;
  EXPECT_FALSE(order.WaitUntilReady(*first, &in_line));  // releases it
  reader.join();
  std::unique_ptr<GroupFailure> failure = order.TakeFailure();
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(failure->group_id, 1u);
  EXPECT_EQ(failure->status.message(), "first");
  EXPECT_EQ(order.TakeFailure(), nullptr);
  order.ReportFailure(absl::UnavailableError("stale"), std::nullopt, *first);
  EXPECT_FALSE(order.RoundOver());
  EXPECT_EQ(order.snapshot().applied_seq, 0u);
}

TEST(CommitOrderTest, DispatchWaitsForASlotAndForHolds) {
  CommitOrder order({.workers = 1, .max_inflight_groups = 1});
  order.StartRound(0, 1);
  Dispatch(order, Group(1, 1));
  std::atomic<bool> slot{false};
  std::thread reader([&] {
    EXPECT_TRUE(order.WaitForSlot());
    slot = true;
  });
  WaitBlocked(order, 1);
  EXPECT_FALSE(slot.load());  // one group in flight
  ApplyGroupPtr first = order.Take();
  bool in_line = false;
  ASSERT_TRUE(order.WaitUntilReady(*first, &in_line));
  order.Committed(first);
  reader.join();

  // ResumeTable's hold: nothing is in flight, so it returns the progress at once and keeps
  // dispatch waiting until released.
  std::optional<uint64_t> quiet = order.HoldAndWaitQuiet();
  ASSERT_TRUE(quiet.has_value());
  EXPECT_EQ(*quiet, 1u);
  slot = false;
  std::thread held([&] {
    EXPECT_TRUE(order.WaitForSlot());
    slot = true;
  });
  WaitBlocked(order, 1);
  EXPECT_FALSE(slot.load());
  order.ReleaseHold();
  held.join();
  EXPECT_TRUE(slot.load());
}

TEST(CommitOrderTest, StopEndsEveryWait) {
  CommitOrder order({.workers = 1});
  std::thread quiet([&] { EXPECT_FALSE(order.HoldAndWaitQuiet().has_value()); });  // not loaded
  std::thread worker([&] { EXPECT_EQ(order.Take(), nullptr); });
  WaitBlocked(order, 2);  // both wait before Stop, so Stop is what ends them
  EXPECT_FALSE(order.Stop());
  EXPECT_TRUE(order.Stop());
  quiet.join();
  worker.join();
  EXPECT_FALSE(order.WaitForApplied(1, absl::Seconds(10)));  // returns at once
  order.WaitForStop();
}

}  // namespace
}  // namespace ferry
