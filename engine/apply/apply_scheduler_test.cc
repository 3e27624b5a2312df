// Unit tests of the ApplyScheduler with a recording in-memory Sink (a test double of the target;
// the scheduler against real Postgres is tested in connectors/postgres/sink/).
#include "engine/apply/apply_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_until.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;

// Remembers the committed progress; its durable progress is set by the test.
class RecordingSink final : public Sink {
 public:
  explicit RecordingSink(std::optional<uint64_t> durable) : durable_(durable) {}

  absl::StatusOr<SinkState> LoadState(const UpstreamLog& upstream) override {
    absl::MutexLock lock(&mu_);
    return SinkState{.applied_seq = committed_, .log_id = upstream.log_id};
  }
  absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int) override {
    return std::unique_ptr<SinkSession>(new Session(this));
  }
  absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation&) override { return UniqueKeys{}; }
  absl::StatusOr<std::optional<uint64_t>> DurableSeq() override {
    absl::MutexLock lock(&mu_);
    ++durable_polls_;
    if (!durable_error_.ok()) return durable_error_;
    return durable_;
  }
  // Every reading of the durable progress fails with `error` (OK: they answer again).
  void SetDurableError(absl::Status error) {
    absl::MutexLock lock(&mu_);
    durable_error_ = std::move(error);
  }
  int durable_polls() const {
    absl::MutexLock lock(&mu_);
    return durable_polls_;
  }
  void SetDurable(uint64_t seq) {
    absl::MutexLock lock(&mu_);
    durable_ = seq;
  }
  // Every group gets a plan that counts itself while alive, so a test sees how many groups the
  // scheduler holds (in flight, or committed and not yet freed) whenever it plans the next one.
  std::shared_ptr<const GroupPlan> Plan(const GroupTransactions&) override {
    const int live = live_plans_.load();
    int seen = most_live_plans_.load();
    while (live > seen && !most_live_plans_.compare_exchange_weak(seen, live)) {
    }
    return std::make_shared<CountedPlan>(&live_plans_);
  }
  int most_live_plans() const { return most_live_plans_.load(); }
  // Groups committed through PrepareAndCommit, and how many of those still had an earlier
  // group uncommitted when they committed (a broken contract).
  int one_step_commits() const { return one_step_commits_.load(); }
  int one_step_out_of_turn() const { return one_step_out_of_turn_.load(); }
  // Committed groups of two or more transactions carrying table descriptions, and how many of
  // those handed the session more than one description object (each transaction its own copy).
  int groups_with_descriptions() const { return groups_with_descriptions_.load(); }
  int groups_with_copies() const { return groups_with_copies_.load(); }
  // The group starting at `seq` stays in Apply until the group starting at `seq + 1` began.
  void HoldUntilNextBegins(uint64_t seq) { hold_seq_ = seq; }
  // The next `n` commits fail with `error` (by default kUnavailable: the target went away).
  void FailCommits(int n, absl::Status error = absl::UnavailableError("target away")) {
    absl::MutexLock lock(&mu_);
    fail_commits_ = n;
    commit_error_ = std::move(error);
  }

 private:
  class Session final : public SinkSession {
   public:
    explicit Session(RecordingSink* sink) : sink_(sink) {}
    absl::Status Begin(const GroupContext& context) override {
      first_seq_ = context.first_seq;
      descriptions_.clear();
      carrying_ = 0;
      if (sink_->hold_seq_ != 0 && first_seq_ == sink_->hold_seq_ + 1) {
        sink_->next_began_.Notify();
      }
      return absl::OkStatus();
    }
    absl::Status Apply(uint64_t, const v1::Transaction& txn) override {
      for (const v1::Relation& r : txn.relations()) descriptions_.insert(&r);
      carrying_ += txn.relations_size() > 0;
      if (sink_->hold_seq_ != 0 && first_seq_ == sink_->hold_seq_) {
        // Bounded, so that a scheduler that never starts the next group fails the test
        // instead of hanging it.
        if (!sink_->next_began_.WaitForNotificationWithTimeout(absl::Seconds(30))) {
          return absl::InternalError("the next group never began");
        }
      }
      return absl::OkStatus();
    }
    absl::Status Prepare() override { return absl::OkStatus(); }
    absl::Status Commit(uint64_t progress_seq, int64_t) override {
      absl::MutexLock lock(&sink_->mu_);
      if (sink_->fail_commits_ > 0) {
        --sink_->fail_commits_;
        return sink_->commit_error_;
      }
      sink_->committed_ = std::max(sink_->committed_, progress_seq);
      NoteDescriptions();
      return absl::OkStatus();
    }
    absl::Status PrepareAndCommit(uint64_t progress_seq, int64_t) override {
      absl::MutexLock lock(&sink_->mu_);
      if (sink_->fail_commits_ > 0) {
        --sink_->fail_commits_;
        return sink_->commit_error_;
      }
      if (sink_->committed_ + 1 != first_seq_) sink_->one_step_out_of_turn_.fetch_add(1);
      sink_->one_step_commits_.fetch_add(1);
      sink_->committed_ = std::max(sink_->committed_, progress_seq);
      NoteDescriptions();
      return absl::OkStatus();
    }
    void Abort() override {}
    std::optional<TableFault> fault() const override { return std::nullopt; }
    uint64_t conflicts_committed() const override { return 0; }

   private:
    void NoteDescriptions() {
      if (carrying_ < 2) return;
      sink_->groups_with_descriptions_.fetch_add(1);
      if (descriptions_.size() > 1) sink_->groups_with_copies_.fetch_add(1);
    }

    RecordingSink* sink_;
    uint64_t first_seq_ = 0;
    std::set<const v1::Relation*> descriptions_;  // of the open group's transactions
    int carrying_ = 0;                            // its transactions carrying any
  };

  class CountedPlan final : public GroupPlan {
   public:
    explicit CountedPlan(std::atomic<int>* live) : live_(live) { live_->fetch_add(1); }
    ~CountedPlan() override { live_->fetch_sub(1); }

   private:
    std::atomic<int>* live_;
  };

  std::atomic<int> live_plans_{0};
  std::atomic<int> most_live_plans_{0};
  std::atomic<int> one_step_commits_{0};
  std::atomic<int> one_step_out_of_turn_{0};
  std::atomic<int> groups_with_descriptions_{0};
  std::atomic<int> groups_with_copies_{0};
  uint64_t hold_seq_ = 0;  // set before the scheduler starts
  absl::Notification next_began_;
  mutable absl::Mutex mu_;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<uint64_t> durable_ ABSL_GUARDED_BY(mu_);
  int durable_polls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status durable_error_ ABSL_GUARDED_BY(mu_);
  int fail_commits_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status commit_error_ ABSL_GUARDED_BY(mu_);
};

// A ManualClock that remembers the deadline of every sleep: the scheduler sleeps on its clock
// only to back off, so each deadline is one retry delay.
class SleepRecordingClock final : public Clock {
 public:
  absl::Time Now() const override { return clock_.Now(); }
  bool SleepUntil(absl::Time deadline, const absl::Notification* cancel) override {
    {
      absl::MutexLock lock(&mu_);
      deadlines_.push_back(deadline);
    }
    return clock_.SleepUntil(deadline, cancel);
  }
  void Advance(absl::Duration d) { clock_.Advance(d); }
  // The deadline of sleep number `n` (from 1), once it began (or 30 s of real time passed).
  std::optional<absl::Time> WaitForSleep(size_t n) const {
    absl::MutexLock lock(&mu_);
    auto began = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return deadlines_.size() >= n; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&began), absl::Seconds(30))) return std::nullopt;
    return deadlines_[n - 1];
  }

 private:
  ManualClock clock_{absl::FromUnixSeconds(1000)};
  mutable absl::Mutex mu_;
  std::vector<absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
};

class ApplySchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DurableLog::Open({.path = dir_.File("inbound"), .sync = false});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    AppendRequest req;
    v1::Transaction txn;
    txn.set_fragment(0);
    txn.set_last_fragment(true);
    txn.set_commit_time_us(1700000000000000);
    for (int i = 0; i < 100; ++i)
      req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
    ASSERT_TRUE(log_->Append(std::move(req)).ok());
  }

  // A scheduler with `options` that applied the log's 100 transactions into `sink` (nullptr,
  // with the failure recorded, if it did not).
  std::unique_ptr<ApplyScheduler> StartApplied(const ApplyOptions& options, RecordingSink* sink) {
    auto apply = ApplyScheduler::Start(options, log_.get(), sink);
    if (!apply.ok()) {
      ADD_FAILURE() << apply.status();
      return nullptr;
    }
    if (!(*apply)->WaitForApplied(100, absl::Seconds(30))) {
      ADD_FAILURE() << "the scheduler did not apply the log's 100 transactions";
      return nullptr;
    }
    return *std::move(apply);
  }

  // StartApplied, then frozen for a verify's cut.
  std::unique_ptr<ApplyScheduler> StartFrozenForACut(RecordingSink* sink) {
    std::unique_ptr<ApplyScheduler> apply =
        StartApplied({.workers = 3, .max_group_transactions = 7}, sink);
    if (apply == nullptr) return nullptr;
    if (absl::Status frozen = apply->FreezeForCut(); !frozen.ok()) {
      ADD_FAILURE() << frozen;
      return nullptr;
    }
    return apply;
  }

  // StartApplied with the scheduler's own poll of the durable progress once an hour.
  std::unique_ptr<ApplyScheduler> StartPollingHourly(RecordingSink* sink) {
    return StartApplied(
        {.workers = 2, .idle_wait = absl::Milliseconds(5), .durable_poll = absl::Hours(1)}, sink);
  }

  // The cursors as the scheduler last wrote them, once `applied` reached `seq` (the two are
  // written in one batch, so the retain cursor seen here belongs to that write or a later one).
  uint64_t RetainOnceAppliedCursorReaches(uint64_t seq) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto applied = log_->GetCursor("applied");
      auto retain = log_->GetCursor("apply_retain_from");
      if (applied.ok() && retain.ok() && applied->value_or(0) >= seq) return retain->value_or(0);
      log_->WaitForRecord(log_->next_seq(), absl::Now() + absl::Milliseconds(5));
    }
    ADD_FAILURE() << "the applied cursor never reached " << seq;
    return 0;
  }

  // Follows the retain cursor until it reads `want` (or 30 s passed); it must never pass it on
  // the way. Returns the last value read.
  uint64_t RetainCursorReaches(uint64_t want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    uint64_t retain = 0;
    while (retain != want && absl::Now() < deadline) {
      auto r = log_->GetCursor("apply_retain_from");
      if (!r.ok()) {
        ADD_FAILURE() << r.status();
        return 0;
      }
      retain = r->value_or(0);
      if (retain > want) {
        ADD_FAILURE() << "the retain cursor passed " << want << ": " << retain;
        return retain;
      }
      log_->WaitForRecord(log_->next_seq(), absl::Now() + absl::Milliseconds(5));
    }
    return retain;
  }

  ferry::testing::TempDir dir_{"ferry-apply-scheduler-test"};
  std::unique_ptr<DurableLog> log_;
};

TEST_F(ApplySchedulerTest, InboundLogIsKeptFromTheTargetsDurableProgress) {
  RecordingSink sink(uint64_t{0});  // nothing durable yet
  auto apply = ApplyScheduler::Start({.workers = 2,
                                      .max_group_transactions = 10,
                                      .idle_wait = absl::Milliseconds(5),
                                      .durable_poll = absl::ZeroDuration()},
                                     log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30)));
  // Everything is applied (visible), nothing durable: trimming must keep all of it.
  EXPECT_EQ(RetainOnceAppliedCursorReaches(100), 1u);
  EXPECT_EQ((*apply)->status().durable_seq, 0u);
  sink.SetDurable(60);
  EXPECT_EQ(RetainCursorReaches(61), 61u);
  EXPECT_EQ((*apply)->status().durable_seq, 60u);
}

// A switchover stops the standby's apply while its writes wait: Stop() must not wait out the
// reader's idle wait (an hour here).
TEST_F(ApplySchedulerTest, StopEndsTheReadersIdleWait) {
  RecordingSink sink(uint64_t{0});
  auto apply =
      ApplyScheduler::Start({.workers = 2, .idle_wait = absl::Hours(1)}, log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30)));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    (*apply)->Stop();
    stopped = true;
  });
  const bool prompt = ferry::testing::WaitUntil([&] { return stopped.load(); });
  if (!prompt) {  // a record wakes the reader, so that the test ends
    AppendRequest req;
    req.records.push_back({RecordKind::kTransaction, std::string()});
    EXPECT_TRUE(log_->Append(std::move(req)).ok());  // not ASSERT: the stopper is joined below
  }
  stopper.join();
  EXPECT_TRUE(prompt) << "Stop() waited for the reader's idle wait";
}

// A group that fails ends its round while the reader waits for the next record (an hour here):
// the failure wakes it, so the retry comes after the backoff (1 ms), not after the idle wait.
TEST_F(ApplySchedulerTest, AFailedGroupEndsTheReadersIdleWait) {
  RecordingSink sink(uint64_t{0});
  auto apply = ApplyScheduler::Start({.workers = 2,
                                      .backoff_initial = absl::Milliseconds(1),
                                      .backoff_max = absl::Milliseconds(1),
                                      .idle_wait = absl::Hours(1)},
                                     log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30)));
  sink.FailCommits(1);
  AppendRequest req;
  v1::Transaction txn;
  txn.set_last_fragment(true);
  req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
  ASSERT_TRUE(log_->Append(std::move(req)).ok());
  // (Without the wake this fails, unless the failure came before the reader's next check of the
  // round after it dispatched: a short window.)
  EXPECT_TRUE((*apply)->WaitForApplied(101, absl::Seconds(30)))
      << "the retry waited for the reader's idle wait";
  EXPECT_EQ((*apply)->status().resets, 1u);
  EXPECT_THAT((*apply)->status().last_error, HasSubstr("target away"));
}

// A promote or a switchover waits for the target's durable progress; it must not wait out the
// poll's interval (nor an hour of it): while anyone waits the reader polls at once.
TEST_F(ApplySchedulerTest, AWaitForTheDurableProgressPollsTheTargetWithoutWaitingForTheInterval) {
  RecordingSink sink(uint64_t{0});
  std::unique_ptr<ApplyScheduler> apply = StartPollingHourly(&sink);
  ASSERT_NE(apply, nullptr);
  // The round's first poll (read 0); the next one is due in an hour.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (sink.durable_polls() == 0 && absl::Now() < deadline) {
    log_->WaitForRecord(log_->next_seq(), absl::Now() + absl::Milliseconds(5));
  }
  ASSERT_GT(sink.durable_polls(), 0);
  EXPECT_EQ(apply->status().durable_seq, 0u);
  sink.SetDurable(100);
  EXPECT_TRUE(apply->WaitForDurable(100, absl::Seconds(60)));
  EXPECT_EQ(apply->status().durable_seq, 100u);
}

// A wait for the durable progress that ends because the target does not answer says why: the
// reading's error is in the status and in DurableErrorSuffix (which a promote's and a
// switchover's timeout messages end with), and it clears once a reading answers.
TEST_F(ApplySchedulerTest, AFailedReadingOfTheDurableProgressIsReportedUntilOneAnswers) {
  RecordingSink sink(uint64_t{0});
  std::unique_ptr<ApplyScheduler> apply = StartPollingHourly(&sink);
  ASSERT_NE(apply, nullptr);
  EXPECT_EQ(apply->status().durable_error, "");
  sink.SetDurableError(absl::UnavailableError("connection to the target refused"));
  EXPECT_FALSE(apply->WaitForDurable(100, absl::Milliseconds(300)));
  const ApplyStatus failed = apply->status();
  EXPECT_EQ(failed.durable_seq, 0u);
  EXPECT_THAT(failed.durable_error, HasSubstr("connection to the target refused"));
  EXPECT_THAT(DurableErrorSuffix(failed),
              HasSubstr(" (the last reading of it failed: UNAVAILABLE: connection to the target"));
  sink.SetDurableError(absl::OkStatus());
  sink.SetDurable(100);
  EXPECT_TRUE(apply->WaitForDurable(100, absl::Seconds(60)));
  EXPECT_EQ(apply->status().durable_error, "");
  EXPECT_EQ(DurableErrorSuffix(apply->status()), "");
}

// The reader parses a table's description once (RelationCatalog): the transactions of a group
// that carry the same description hand the session one object, not a copy each.
TEST_F(ApplySchedulerTest, TransactionsOfAGroupShareOneParsedDescription) {
  AppendRequest req;
  v1::Transaction txn;
  txn.set_last_fragment(true);
  v1::Relation* r = txn.add_relations();
  r->set_relation_id(7);
  r->set_schema("public");
  r->set_name("accounts");
  r->add_columns()->set_name("id");
  for (int i = 0; i < 40; ++i) {
    txn.set_commit_time_us(1700000000000000 + i);  // each record its own bytes but the relation
    req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
  }
  ASSERT_TRUE(log_->Append(std::move(req)).ok());
  RecordingSink sink(std::nullopt);
  auto apply = ApplyScheduler::Start(
      {.workers = 2, .max_group_transactions = 10, .idle_wait = absl::Milliseconds(5)}, log_.get(),
      &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(140, absl::Seconds(30)));
  EXPECT_GT(sink.groups_with_descriptions(), 0);
  EXPECT_EQ(sink.groups_with_copies(), 0);
}

TEST_F(ApplySchedulerTest, DurableCommitsReleaseTheLogAsTheyApply) {
  RecordingSink sink(std::nullopt);  // every commit durable when it returns
  auto apply = ApplyScheduler::Start(
      {.workers = 1, .idle_wait = absl::Milliseconds(5), .durable_poll = absl::ZeroDuration()},
      log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30)));
  EXPECT_EQ(RetainCursorReaches(101), 101u);
}

// Committed groups are freed by the reader (off the workers' path), but never later than the
// next dispatch: the groups held at any time stay within the in-flight limit. A scheduler that
// freed them only when idle would hold every group of this run (the reader never idles here).
TEST_F(ApplySchedulerTest, CommittedGroupsAreFreedBeforeMoreAreDispatched) {
  RecordingSink sink(std::nullopt);
  auto apply = ApplyScheduler::Start({.workers = 2,
                                      .max_group_transactions = 1,
                                      .max_inflight_groups = 3,
                                      .idle_wait = absl::Milliseconds(5),
                                      .durable_poll = absl::ZeroDuration()},
                                     log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30)));
  EXPECT_EQ((*apply)->status().groups_committed, 100u);
  EXPECT_LE(sink.most_live_plans(), 3);
}

// A group whose turn has come (every group before it committed) commits in one step, so a sink
// can send its work and its commit together; a group that started while an earlier one was
// still open prepares first and commits in its turn. Group 2 is held in Apply until group 3
// began, so group 3 certainly starts out of turn: a scheduler that always committed in one step
// would commit it before group 2.
TEST_F(ApplySchedulerTest, OnlyGroupsWhoseTurnHasComeCommitInOneStep) {
  RecordingSink sink(std::nullopt);
  sink.HoldUntilNextBegins(2);
  auto apply = ApplyScheduler::Start({.workers = 4,
                                      .max_group_transactions = 1,
                                      .idle_wait = absl::Milliseconds(5),
                                      .durable_poll = absl::ZeroDuration()},
                                     log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30))) << (*apply)->status().last_error;
  EXPECT_EQ((*apply)->status().groups_committed, 100u);
  EXPECT_GT(sink.one_step_commits(), 0);
  EXPECT_LT(sink.one_step_commits(), 100);  // group 3 at least took two steps
  EXPECT_EQ(sink.one_step_out_of_turn(), 0);
}

// Transient failures back off on the injected clock: backoff_initial, doubled up to backoff_max,
// no jitter; progress since the last failure starts the schedule over. Nothing is retried
// before the clock reaches the deadline (the test advances it; real time plays no part).
TEST_F(ApplySchedulerTest, TransientFailuresBackOffOnTheInjectedClock) {
  SleepRecordingClock clock;
  RecordingSink sink(std::nullopt);
  sink.FailCommits(4);
  auto apply = ApplyScheduler::Start({.workers = 1,
                                      .backoff_initial = absl::Seconds(1),
                                      .backoff_max = absl::Seconds(4),
                                      .clock = &clock,
                                      .idle_wait = absl::Milliseconds(5),
                                      .durable_poll = absl::ZeroDuration()},
                                     log_.get(), &sink);
  ASSERT_TRUE(apply.ok()) << apply.status();
  size_t sleeps = 0;
  for (absl::Duration delay :
       {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4), absl::Seconds(4)}) {
    std::optional<absl::Time> deadline = clock.WaitForSleep(++sleeps);
    ASSERT_TRUE(deadline.has_value()) << "sleep " << sleeps;
    EXPECT_EQ(*deadline - clock.Now(), delay) << "sleep " << sleeps;
    EXPECT_EQ((*apply)->status().applied_seq, 0u);
    EXPECT_EQ((*apply)->status().resets, sleeps);
    EXPECT_NE((*apply)->status().last_error.find("target away"), std::string::npos);
    clock.Advance(delay);
  }
  ASSERT_TRUE((*apply)->WaitForApplied(100, absl::Seconds(30))) << (*apply)->status().last_error;

  // Progress was made: the next failure waits backoff_initial again.
  sink.FailCommits(1);
  AppendRequest req;
  req.records.push_back({RecordKind::kHeartbeat, ""});
  v1::Transaction txn;
  txn.set_last_fragment(true);
  req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
  ASSERT_TRUE(log_->Append(std::move(req)).ok());
  std::optional<absl::Time> deadline = clock.WaitForSleep(++sleeps);
  ASSERT_TRUE(deadline.has_value());
  EXPECT_EQ(*deadline - clock.Now(), absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE((*apply)->WaitForApplied(102, absl::Seconds(30))) << (*apply)->status().last_error;
  EXPECT_EQ((*apply)->status().resets, 5u);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// Appends `n` transactions whose source commit positions are 10 x their seq.
void AppendPositioned(DurableLog& log, int n) {
  AppendRequest req;
  const uint64_t first = log.next_seq();
  for (int i = 0; i < n; ++i) {
    v1::Transaction txn;
    txn.set_fragment(0);
    txn.set_last_fragment(true);
    txn.set_source_position((first + i) * 10);
    req.records.push_back({RecordKind::kTransaction, txn.SerializeAsString()});
  }
  ASSERT_TRUE(log.Append(std::move(req)).ok());
}

// The verify's cut (docs/verify.md): frozen, apply dispatches nothing new; at the cut it holds
// with exactly the transactions committed before the cut position applied; released, it goes on.
TEST_F(ApplySchedulerTest, VerifyCutHoldsBeforeTheFirstTransactionAtTheCut) {
  RecordingSink sink(std::nullopt);
  std::unique_ptr<ApplyScheduler> apply = StartFrozenForACut(&sink);
  ASSERT_NE(apply, nullptr);
  EXPECT_EQ(apply->FreezeForCut().code(), absl::StatusCode::kFailedPrecondition);
  AppendPositioned(*log_, 100);  // seqs 101..200 at positions 1010..2000
  // Frozen with no cut known: never reached, nothing of the new records applied.
  EXPECT_EQ(apply->WaitForCut(absl::Milliseconds(100)).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(apply->status().applied_seq, 100u);
  apply->SetCut(1505);  // seq 150 (1500) is before the cut, seq 151 (1510) after it
  ASSERT_TRUE(apply->WaitForCut(absl::Seconds(30)).ok());
  EXPECT_EQ(apply->status().applied_seq, 150u);
  apply->ReleaseCut();
  ASSERT_TRUE(apply->WaitForApplied(200, absl::Seconds(30)));
  // A second cut, at a position apply has not reached yet, is reached once records arrive.
  ASSERT_TRUE(apply->FreezeForCut().ok());
  apply->SetCut(2105);
  AppendPositioned(*log_, 20);  // 201..220 at 2010..2200
  ASSERT_TRUE(apply->WaitForCut(absl::Seconds(30)).ok());
  EXPECT_EQ(apply->status().applied_seq, 210u);
  // Stop while held: returns (the destructor would hang otherwise).
  apply->Stop();
  EXPECT_FALSE(apply->WaitForCut(absl::Seconds(1)).ok());
}

// A verify waiting for its cut while apply stops for good (a commit fails with an error no
// retry mends) is told at once: the cut can no longer be reached. Before, it waited out its
// timeout (the verify's cut timeout: up to 30 s).
TEST_F(ApplySchedulerTest, StoppingForGoodEndsAVerifysWaitForItsCut) {
  RecordingSink sink(std::nullopt);
  std::unique_ptr<ApplyScheduler> apply = StartFrozenForACut(&sink);
  ASSERT_NE(apply, nullptr);
  apply->SetCut(5005);  // past every record: held only once seq 500 is applied
  sink.FailCommits(1000, absl::InvalidArgumentError("row does not fit the table"));
  absl::Status reached;  // written by the thread, read after its join
  absl::Notification returned;
  std::thread verify([&] {
    reached = apply->WaitForCut(absl::Hours(1));
    returned.Notify();
  });
  AppendPositioned(*log_, 10);  // seqs 101..110 at 1010..1100, before the cut: their commit fails
  const bool ended = returned.WaitForNotificationWithTimeout(absl::Seconds(60));
  EXPECT_TRUE(ended) << "the wait for the cut did not end when apply stopped for good";
  apply->Stop();  // ends the wait in any case, so that the thread joins
  verify.join();
  EXPECT_EQ(reached.code(), absl::StatusCode::kFailedPrecondition) << reached;
  EXPECT_THAT(reached.message(), HasSubstr("row does not fit the table"));
  const ApplyStatus status = apply->status();
  EXPECT_TRUE(status.failed);
  EXPECT_THAT(status.last_error, HasSubstr("row does not fit the table"));
  apply->ReleaseCut();
  // The next verify is refused up front, with the error.
  const absl::Status refused = apply->FreezeForCut();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("row does not fit the table"));
}

// Apply stopping for good on a later record does not end a wait for the durable progress of
// what it already applied: the target still makes those commits durable by itself, and a
// promote or switchover waiting for them must not be told "stopped for good" meanwhile.
TEST_F(ApplySchedulerTest, AWaitForTheDurableProgressOfAppliedRecordsOutlivesAHalt) {
  RecordingSink sink(uint64_t{50});
  std::unique_ptr<ApplyScheduler> apply = StartPollingHourly(&sink);
  ASSERT_NE(apply, nullptr);
  sink.FailCommits(1000, absl::InvalidArgumentError("row does not fit the table"));
  AppendPositioned(*log_, 1);  // seq 101: its commit fails, apply stops for good
  ASSERT_TRUE(ferry::testing::WaitUntil([&] { return apply->status().failed; }));
  EXPECT_EQ(apply->status().applied_seq, 100u);
  std::atomic<int> waited{-1};  // -1 running, then 0 or 1
  std::thread promote([&] { waited = apply->WaitForDurable(100, absl::Seconds(60)) ? 1 : 0; });
  // The wait reads the durable progress every kDurableWaitSlice while it runs.
  const int polls = sink.durable_polls();
  EXPECT_TRUE(ferry::testing::WaitUntil(
      [&] { return sink.durable_polls() >= polls + 3 || waited.load() >= 0; }));
  EXPECT_EQ(waited.load(), -1) << "the wait ended at the halt, with seq 100 applied";
  sink.SetDurable(100);
  promote.join();
  EXPECT_EQ(waited.load(), 1);
  // Short of the applied progress, the halt ends the wait at once.
  EXPECT_FALSE(apply->WaitForDurable(101, absl::Hours(1)));
}

// After a halt a target crash is never mended (nothing applies again what it took back): a
// wait for the durable progress ends as soon as the crash is read, and the error that stopped
// apply stays its last_error.
TEST_F(ApplySchedulerTest, AfterAHaltATargetCrashEndsAWaitForTheDurableProgress) {
  RecordingSink sink(uint64_t{50});
  std::unique_ptr<ApplyScheduler> apply = StartPollingHourly(&sink);
  ASSERT_NE(apply, nullptr);
  sink.FailCommits(1000, absl::InvalidArgumentError("row does not fit the table"));
  AppendPositioned(*log_, 1);
  ASSERT_TRUE(ferry::testing::WaitUntil([&] { return apply->status().failed; }));
  sink.SetDurableError(absl::AbortedError("the target restarted since the round began"));
  std::atomic<int> waited{-1};
  absl::Notification returned;
  std::thread promote([&] {
    waited = apply->WaitForDurable(100, absl::Hours(1)) ? 1 : 0;
    returned.Notify();
  });
  EXPECT_TRUE(returned.WaitForNotificationWithTimeout(absl::Seconds(60)))
      << "the wait did not end at the crash";
  apply->Stop();  // ends the wait in any case, so that the thread joins
  promote.join();
  EXPECT_EQ(waited.load(), 0);
  EXPECT_THAT(apply->status().last_error, HasSubstr("row does not fit the table"));
}

}  // namespace
}  // namespace ferry
