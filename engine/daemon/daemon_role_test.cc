// A region changes role at run time: two in-process daemons (east primary, west standby) over
// real gRPC and real durable logs, with in-memory doubles for the databases (a scripted Source
// and a recording Sink; the daemon against real Postgres is tested in tests/e2e). The primary
// pipeline is stopped and the standby pipeline started, and back, with every transaction
// delivered exactly once in each direction and the epoch raised at each flip.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/daemon/daemon.h"
#include "proto/replication.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/free_port.h"
#include "tests/support/http_get.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

// One region's "database": what its application committed (for the source to capture) and what
// apply wrote into it (by origin region, in commit order). Outlives the sources and sinks the
// daemon builds and drops at each role change, as a real database does.
class FakeDatabase {
 public:
  // False (nothing committed) while the database is fenced.
  bool Commit(int n) {
    absl::MutexLock lock(&mu_);
    if (fenced_) return false;
    for (int i = 0; i < n; ++i) pending_.push_back(++committed_);
    return true;
  }
  // The fence (FakeFence): a marker is a commit of its own, captured and shipped like any other
  // but never applied as the application's.
  void SetFenced(bool fenced) {
    absl::MutexLock lock(&mu_);
    fenced_ = fenced;
  }
  bool fenced() {
    absl::MutexLock lock(&mu_);
    return fenced_;
  }
  uint64_t Mark() {
    absl::MutexLock lock(&mu_);
    markers_.insert(++committed_);
    return committed_ - 1;
  }
  bool IsMarker(uint64_t id) {
    absl::MutexLock lock(&mu_);
    return markers_.contains(id);
  }
  // What the application committed, in order.
  std::vector<uint64_t> AppCommitted() {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (uint64_t id = 1; id <= committed_; ++id) {
      if (!markers_.contains(id)) out.push_back(id);
    }
    return out;
  }
  // The next committed ids after `after` (at most `max`).
  std::vector<uint64_t> CommittedAfter(uint64_t after, size_t max) {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (uint64_t id = after + 1; id <= committed_ && out.size() < max; ++id) out.push_back(id);
    return out;
  }
  void Applied(const std::string& origin, uint64_t id) {
    absl::MutexLock lock(&mu_);
    applied_[origin].push_back(id);
  }
  std::vector<uint64_t> applied(const std::string& origin) {
    absl::MutexLock lock(&mu_);
    return applied_[origin];
  }
  bool WaitApplied(const std::string& origin, size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return applied_[origin].size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }
  uint64_t sink_progress = 0;  // the sink's committed inbound seq (guarded by the sink's use)
  absl::Mutex progress_mu;
  // While set, apply's commits wait (a standby that is slow to apply).
  bool hold_apply ABSL_GUARDED_BY(progress_mu) = false;
  // While not OK, apply's commits fail with it (nothing applied).
  absl::Status commit_error ABSL_GUARDED_BY(progress_mu);
  // While set, the source's run ends with a lost slot instead of capturing a fence's marker.
  std::atomic<bool> slot_lost_at_marker{false};

 private:
  absl::Mutex mu_;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<uint64_t> pending_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<uint64_t>> applied_ ABSL_GUARDED_BY(mu_);
  bool fenced_ ABSL_GUARDED_BY(mu_) = false;
  std::set<uint64_t> markers_ ABSL_GUARDED_BY(mu_);
};

class FakeFence final : public DatabaseFence {
 public:
  explicit FakeFence(FakeDatabase* db) : db_(db) {}
  absl::Status Raise(const FenceNotice&, bool) override {
    db_->SetFenced(true);
    return absl::OkStatus();
  }
  absl::Status Lift() override {
    db_->SetFenced(false);
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Mark(const std::string&) override { return db_->Mark(); }

 private:
  FakeDatabase* const db_;
};

// Captures the database's commits as one-change transactions; the id is the source position.
class ScriptedSource final : public Source {
 public:
  ScriptedSource(FakeDatabase* db, std::string region) : db_(db), region_(std::move(region)) {}
  absl::Status Run(CaptureTarget& target, const StopSignal& stop) override {
    const absl::Status lost =
        absl::FailedPreconditionError("replication slot \"ferry_east\" does not exist");
    while (!stop.stopped()) {
      std::vector<v1::Transaction> txns;
      uint64_t last = 0;
      for (uint64_t id : db_->CommittedAfter(target.CapturedPosition(), 10)) {
        if (db_->slot_lost_at_marker.load() && db_->IsMarker(id)) {
          return lost;
        }
        v1::Transaction t;
        t.set_origin_region(region_);
        t.set_source_position(id);
        t.set_end_position(id);
        t.set_commit_time_us(absl::ToUnixMicros(absl::Now()));
        t.set_last_fragment(true);
        if (db_->IsMarker(id)) t.set_source_xid(1);  // the fence's marker
        txns.push_back(std::move(t));
        last = id;
      }
      if (txns.empty()) {
        stop.WaitFor(absl::Milliseconds(5));
        continue;
      }
      if (absl::Status s = target.Append(std::move(txns), last); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  SourceHealth Health() const override { return {.connected = true}; }

 private:
  FakeDatabase* const db_;
  const std::string region_;
};

// Applies by recording (origin, source position) in the database, with its progress.
class RecordingSink final : public Sink {
 public:
  explicit RecordingSink(FakeDatabase* db) : db_(db) {}
  absl::StatusOr<SinkState> LoadState(const UpstreamLog& upstream) override {
    absl::MutexLock lock(&db_->progress_mu);
    return SinkState{.applied_seq = db_->sink_progress, .log_id = upstream.log_id};
  }
  absl::StatusOr<std::unique_ptr<SinkSession>> OpenSession(int) override {
    return std::unique_ptr<SinkSession>(new Session(db_));
  }
  absl::StatusOr<UniqueKeys> UniqueKeysOf(const v1::Relation&) override { return UniqueKeys{}; }

 private:
  class Session final : public SinkSession {
   public:
    explicit Session(FakeDatabase* db) : db_(db) {}
    absl::Status Begin(const GroupContext&) override {
      txns_.clear();
      return absl::OkStatus();
    }
    absl::Status Apply(uint64_t, const v1::Transaction& t) override {
      txns_.push_back(t);
      return absl::OkStatus();
    }
    absl::Status Prepare() override { return absl::OkStatus(); }
    absl::Status Commit(uint64_t progress_seq, int64_t) override {
      absl::MutexLock lock(&db_->progress_mu);
      db_->progress_mu.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &db_->hold_apply));
      if (!db_->commit_error.ok()) return db_->commit_error;
      if (progress_seq <= db_->sink_progress) return absl::OkStatus();  // a replay: no effect
      for (const v1::Transaction& t : txns_) {
        if (t.source_xid() == 0) db_->Applied(t.origin_region(), t.source_position());
      }
      db_->sink_progress = progress_seq;
      return absl::OkStatus();
    }
    absl::Status PrepareAndCommit(uint64_t progress_seq, int64_t time) override {
      return Commit(progress_seq, time);
    }
    void Abort() override { txns_.clear(); }
    std::optional<TableFault> fault() const override { return std::nullopt; }
    uint64_t conflicts_committed() const override { return 0; }

   private:
    FakeDatabase* const db_;
    std::vector<v1::Transaction> txns_;
  };
  FakeDatabase* const db_;
};

class DaemonRoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ports_[0] = testing::FreePort();
    ports_[1] = testing::FreePort();
    ASSERT_NE(ports_[0], 0);
    ASSERT_NE(ports_[1], 0);
  }

  std::unique_ptr<Daemon> StartRegion(int i) {
    const char* name = i == 0 ? "east" : "west";
    const std::string yaml = absl::StrCat(
        "region: ", name, "\ndata_dir: ", base_, "/", name,
        "\nrole: ", i == 0 ? "primary" : "standby",
        "\npostgres:\n  dsn: \"host=127.0.0.1 dbname=unused\"\n  publication: ferry\n  slot: ",
        "ferry_", name, "\nlisten:\n  replication: 127.0.0.1:", ports_[i],
        "\n  admin: 127.0.0.1:0\n  metrics: 127.0.0.1:0\npeer:\n  replication: 127.0.0.1:",
        ports_[1 - i], "\n  region: ", i == 0 ? "west" : "east",
        "\nstream:\n  reconnect_min_ms: 20\n  reconnect_max_ms: 200\n",
        token_.empty() ? "" : absl::StrCat("security:\n  token_file: ", TokenFile(), "\n"));
    auto config = config::ParseConfig(yaml, name);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    FakeDatabase* db = &db_[i];
    DaemonFactories factories;
    factories.source = [db, name](
                           const config::Config&,
                           const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Source>> {
      return std::make_unique<ScriptedSource>(db, name);
    };
    factories.sink = [db, this](
                         const config::Config&,
                         const PipelineContext& context) -> absl::StatusOr<std::unique_ptr<Sink>> {
      if (fail_sink_.load()) return absl::UnavailableError("target database unreachable");
      sink_epochs_.push_back(context.epoch);
      return std::make_unique<RecordingSink>(db);
    };
    if (with_fence_) {
      factories.fence =
          [db](const config::Config&) -> absl::StatusOr<std::unique_ptr<DatabaseFence>> {
        return std::make_unique<FakeFence>(db);
      };
    }
    auto daemon = Daemon::Start(*config, std::move(factories));
    EXPECT_TRUE(daemon.ok()) << daemon.status();
    return daemon.ok() ? *std::move(daemon) : nullptr;
  }

  // The HTTP status of `path` on the region's metrics listener (0 when it does not answer).
  static long Http(Daemon& d, const std::string& path) {
    auto r = testing::HttpGet(absl::StrCat("http://127.0.0.1:", d.metrics_port(), path));
    return r.ok() ? r->status : 0;
  }

  static std::vector<uint64_t> Ids(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t i = from; i <= to; ++i) v.push_back(i);
    return v;
  }

  // A control client to region i's replication listener, as `caller` with `token`.
  std::unique_ptr<RegionControlClient> ControlClient(int i, const std::string& token,
                                                     const std::string& caller) {
    auto client =
        RegionControlClient::Create(absl::StrCat("127.0.0.1:", ports_[i]), {}, token, caller);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // East primary and west standby, both with a FakeFence, three of east's transactions applied
  // on west.
  void StartFencedPairWithThreeApplied(std::unique_ptr<Daemon>& east,
                                       std::unique_ptr<Daemon>& west) {
    with_fence_ = true;
    west = StartRegion(1);
    ASSERT_NE(west, nullptr);
    east = StartRegion(0);
    ASSERT_NE(east, nullptr);
    db_[0].Commit(3);
    ASSERT_TRUE(db_[1].WaitApplied("east", 3));
  }

  void HoldApply(int i, bool hold) {
    absl::MutexLock lock(&db_[i].progress_mu);
    db_[i].hold_apply = hold;
  }

  void FailCommits(int i, const absl::Status& error) {
    absl::MutexLock lock(&db_[i].progress_mu);
    db_[i].commit_error = error;
  }

  // The child mode of RoleChangeKilledAtEachStep: the directory the parent chose.
  static const char* ChildDir() { return std::getenv("FERRY_ROLE_CHILD_DIR"); }

  testing::TempDir dir_{"ferry-daemon-role"};
  // Where the regions' data_dirs live (the parent's directory in child mode).
  std::string base_ = ChildDir() != nullptr ? std::string(ChildDir()) : dir_.path();
  int ports_[2] = {0, 0};
  FakeDatabase db_[2];                  // east, west
  std::vector<uint64_t> sink_epochs_;   // epochs the sink factories were given (test thread)
  std::atomic<bool> fail_sink_{false};  // the sink factory fails while set
  bool with_fence_ = false;             // regions started from now on get a FakeFence
  std::string token_;                   // the replication token of regions started from now on

  std::string TokenFile() {
    const std::string path = absl::StrCat(base_, "/replication-token");
    std::ofstream(path) << token_ << "\n";
    chmod(path.c_str(), 0600);
    return path;
  }
};

TEST_F(DaemonRoleTest, RolesFlipAtRunTimeAndBackWithEveryTransactionOnce) {
  auto west = StartRegion(1);
  ASSERT_NE(west, nullptr);
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  EXPECT_EQ(west->replication_port(), ports_[1]);
  // Both roles listen: a standby for the stream, both for the peer's control calls.
  EXPECT_EQ(east->replication_port(), ports_[0]);

  db_[0].Commit(20);
  ASSERT_TRUE(db_[1].WaitApplied("east", 20));
  // What a load balancer or a DNS failover check polls.
  EXPECT_EQ(Http(*east, "/primary"), 200);
  EXPECT_EQ(Http(*west, "/primary"), 503);
  EXPECT_EQ(Http(*east, "/healthz"), 200);
  EXPECT_EQ(Http(*west, "/healthz"), 200);
  auto scrape =
      testing::HttpGet(absl::StrCat("http://127.0.0.1:", west->metrics_port(), "/metrics"));
  ASSERT_TRUE(scrape.ok());
  EXPECT_NE(scrape->body.find("ferry_up{region=\"west\",role=\"standby\"} 1"), std::string::npos)
      << scrape->body.substr(0, 2000);
  EXPECT_EQ(Http(*west, "/nothing"), 404);

  // The switch: the old primary drains and becomes standby first, then the standby flips.
  ASSERT_TRUE(east->ChangeRole(Role::kStandby, absl::Seconds(10)).ok());
  EXPECT_EQ(east->Status().role(), "standby");
  EXPECT_EQ(east->replication_port(), ports_[0]);
  ASSERT_TRUE(west->ChangeRole(Role::kPrimary, absl::Seconds(10)).ok());
  const v1::StatusReply w = west->Status();
  EXPECT_EQ(w.role(), "primary");
  EXPECT_EQ(w.epoch(), 2u);
  EXPECT_EQ(w.state(), "replicating");
  EXPECT_FALSE(w.fenced());
  EXPECT_EQ(east->Status().role(), "standby");
  EXPECT_FALSE(east->Status().fenced());  // no database fence in this test (no factory)
  EXPECT_EQ(Http(*east, "/primary"), 503);
  EXPECT_EQ(Http(*west, "/primary"), 200);

  db_[1].Commit(15);
  ASSERT_TRUE(db_[0].WaitApplied("west", 15));

  // And back.
  ASSERT_TRUE(west->ChangeRole(Role::kStandby, absl::Seconds(10)).ok());
  ASSERT_TRUE(east->ChangeRole(Role::kPrimary, absl::Seconds(10)).ok());
  EXPECT_EQ(east->Status().epoch(), 3u);
  db_[0].Commit(5);
  ASSERT_TRUE(db_[1].WaitApplied("east", 25));

  EXPECT_EQ(db_[1].applied("east"), Ids(1, 25));
  EXPECT_EQ(db_[0].applied("west"), Ids(1, 15));
  EXPECT_TRUE(db_[0].applied("east").empty());  // nothing looped back
  EXPECT_TRUE(db_[1].applied("west").empty());
  // Each standby pipeline's sink was built under the epoch of its time (regression: the sink's
  // epoch was never set, so origins were always named with epoch 0).
  EXPECT_EQ(sink_epochs_, (std::vector<uint64_t>{1, 2, 3}));
  // A change to the role a region already has is refused.
  EXPECT_EQ(east->ChangeRole(Role::kPrimary, absl::Seconds(1)).code(),
            absl::StatusCode::kFailedPrecondition);
}

// ferryctl reverse with the databases as doubles (a fake fence; the fence and the drain against
// real Postgres are tested in tests/e2e/switchover_e2e_test.cc): one call flips both regions,
// sent to the primary or to the standby, with every transaction applied once, and only the
// primary's database takes writes.
TEST_F(DaemonRoleTest, ReverseFlipsBothRegionsAndBackWithEveryTransactionOnce) {
  with_fence_ = true;
  auto west = StartRegion(1);
  ASSERT_NE(west, nullptr);
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  db_[0].Commit(20);
  ASSERT_TRUE(db_[1].WaitApplied("east", 20));

  auto done = east->Reverse(absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->new_primary(), "west");
  EXPECT_EQ(done->epoch(), 2u);
  EXPECT_GT(done->steps_size(), 2);
  const v1::StatusReply e = east->Status(), w = west->Status();
  EXPECT_EQ(e.role(), "standby");
  EXPECT_EQ(e.epoch(), 2u);
  EXPECT_EQ(e.state(), "replicating");
  EXPECT_EQ(e.operation(), "");
  EXPECT_EQ(w.role(), "primary");
  EXPECT_EQ(w.epoch(), 2u);
  EXPECT_EQ(Http(*west, "/primary"), 200);
  EXPECT_EQ(Http(*east, "/primary"), 503);
  EXPECT_TRUE(e.fenced());
  EXPECT_EQ(e.fence(), "raised");
  EXPECT_FALSE(w.fenced());
  EXPECT_EQ(w.fence(), "lifted");
  EXPECT_FALSE(db_[0].Commit(1));  // east's database refuses the application's writes
  ASSERT_TRUE(db_[1].Commit(10));
  ASSERT_TRUE(db_[0].WaitApplied("west", 10));

  // Sent to the standby (east now), it runs on the primary: back to the start.
  auto back = east->Reverse(absl::Seconds(30));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->new_primary(), "east");
  EXPECT_EQ(back->epoch(), 3u);
  EXPECT_EQ(east->Status().role(), "primary");
  EXPECT_EQ(west->Status().role(), "standby");
  ASSERT_TRUE(db_[0].Commit(5));
  EXPECT_FALSE(db_[1].Commit(1));
  ASSERT_TRUE(db_[1].WaitApplied("east", 25));
  EXPECT_EQ(db_[1].applied("east"), db_[0].AppCommitted());
  EXPECT_EQ(db_[1].applied("east").size(), 25u);
  EXPECT_EQ(db_[0].applied("west"), db_[1].AppCommitted());
  EXPECT_EQ(db_[0].applied("west").size(), 10u);
  EXPECT_TRUE(db_[0].applied("east").empty());
  EXPECT_TRUE(db_[1].applied("west").empty());
}

// Refusals leave both regions as they were: a paused region (either), a second reverse while
// one runs, and a peer that is down.
TEST_F(DaemonRoleTest, ReverseRefusedWhilePausedRunningOrPeerDownChangesNothing) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  with_fence_ = true;
  auto west = StartRegion(1);
  ASSERT_NE(west, nullptr);
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  auto unchanged = [&] {
    const v1::StatusReply e = east->Status(), w = west->Status();
    EXPECT_EQ(e.role(), "primary");
    EXPECT_EQ(e.state(), "replicating");
    EXPECT_EQ(e.epoch(), 1u);
    EXPECT_EQ(e.operation(), "");
    EXPECT_EQ(w.role(), "standby");
    EXPECT_EQ(w.epoch(), 1u);
  };
  ASSERT_TRUE(east->Pause().ok());
  auto refused = east->Reverse(absl::Seconds(10));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("paused"), std::string::npos) << refused.status();
  unchanged();
  ASSERT_TRUE(east->Resume().ok());
  ASSERT_TRUE(west->Pause().ok());
  refused = east->Reverse(absl::Seconds(10));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("paused"), std::string::npos) << refused.status();
  unchanged();
  ASSERT_TRUE(west->Resume().ok());

  // A standby slow to apply holds the first reverse at its last step; a second is refused.
  db_[0].Commit(3);
  ASSERT_TRUE(db_[1].WaitApplied("east", 3));
  HoldApply(1, true);
  db_[0].Commit(2);
  absl::StatusOr<v1::ReverseReply> first = absl::UnknownError("not run");
  std::thread running([&] { first = east->Reverse(absl::Seconds(30)); });
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (west->Status().operation().empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));  // bounded poll for the standby's step
  }
  EXPECT_NE(west->Status().operation(), "");
  auto second = east->Reverse(absl::Seconds(10));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  auto via_standby = west->Reverse(absl::Seconds(10));
  EXPECT_EQ(via_standby.status().code(), absl::StatusCode::kFailedPrecondition)
      << via_standby.status();
  HoldApply(1, false);
  running.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(db_[1].WaitApplied("east", 5));
  ASSERT_TRUE(east->Reverse(absl::Seconds(30)).ok());  // back: east primary under epoch 3

  west->Shutdown(absl::ZeroDuration());
  refused = east->Reverse(absl::Seconds(10));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  const v1::StatusReply e = east->Status();
  EXPECT_EQ(e.role(), "primary");
  EXPECT_EQ(e.state(), "replicating");
  EXPECT_EQ(e.epoch(), 3u);
  EXPECT_EQ(Http(*east, "/primary"), 200);
  EXPECT_FALSE(e.fenced());  // a refused reverse leaves the fence lifted
  EXPECT_TRUE(db_[0].Commit(1));
}

// A standby whose apply stopped for good cannot take part in a switchover, and says why rather
// than timing out (a longer wait cannot help, and a timeout would have the primary ask whether
// it flipped): the primary refuses at its first check, before fencing anything, from the
// standby's answer to its probe; a switchover call that reaches the standby anyway (apply halted
// after the probe) is refused there with apply's error. A promote there is refused the same way,
// without the timeout's "promote again".
TEST_F(DaemonRoleTest, SwitchoverAndPromoteToAStandbyWhoseApplyStoppedForGoodSayWhy) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  std::unique_ptr<Daemon> west, east;  // east is destroyed first
  ASSERT_NO_FATAL_FAILURE(StartFencedPairWithThreeApplied(east, west));
  FailCommits(1, absl::InvalidArgumentError("row does not fit the table"));
  db_[0].Commit(2);

  // The standby's half, called as the primary would after its drain.
  auto control = ControlClient(1, "", "east");
  ASSERT_NE(control, nullptr);
  v1::SwitchoverRequest request;
  request.set_epoch(1);
  request.set_new_epoch(2);
  request.set_operation("reverse-1-0000abcd");
  request.set_through_seq(1000);
  auto accepted = control->Switchover(request, absl::Now() + absl::Seconds(60));
  EXPECT_EQ(accepted.status().code(), absl::StatusCode::kFailedPrecondition) << accepted.status();
  EXPECT_NE(accepted.status().message().find("region west's apply stopped for good after seq 3"),
            std::string::npos)
      << accepted.status();
  EXPECT_NE(accepted.status().message().find("row does not fit the table"), std::string::npos)
      << accepted.status();

  auto refused = east->Reverse(absl::Seconds(60));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("region west's apply stopped for good (INVALID_"
                                            "ARGUMENT: row does not fit the table)"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("nothing changed"), std::string::npos)
      << refused.status();
  const v1::StatusReply e = east->Status(), w = west->Status();
  EXPECT_EQ(e.role(), "primary");
  EXPECT_EQ(e.state(), "replicating");
  EXPECT_EQ(e.epoch(), 1u);
  EXPECT_FALSE(e.fenced());
  EXPECT_EQ(w.role(), "standby");
  EXPECT_EQ(w.epoch(), 1u);
  EXPECT_TRUE(db_[0].Commit(1));  // the primary takes writes as before

  east->Shutdown(absl::ZeroDuration());
  // --force: whether west already saw east's stream end is not what this test is about.
  auto promoted = west->Promote(/*force=*/true, absl::Seconds(60));
  EXPECT_EQ(promoted.status().code(), absl::StatusCode::kFailedPrecondition) << promoted.status();
  EXPECT_NE(promoted.status().message().find("row does not fit the table"), std::string::npos)
      << promoted.status();
  EXPECT_NE(promoted.status().message().find("nothing changed"), std::string::npos)
      << promoted.status();
  EXPECT_EQ(promoted.status().message().find("promote again"), std::string::npos)
      << promoted.status();
  EXPECT_EQ(west->Status().role(), "standby");
  EXPECT_EQ(db_[1].applied("east").size(), 3u);
}

// A primary whose capture stopped until an operator acts cannot drain: the switchover is refused
// before anything is fenced, and a capture that stops during the drain rolls the switchover back
// at once with its error, not at the end of the timeout.
TEST_F(DaemonRoleTest, ASwitchoverFromAPrimaryWhoseCaptureStoppedForGoodSaysWhy) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  std::unique_ptr<Daemon> west, east;  // east is destroyed first
  ASSERT_NO_FATAL_FAILURE(StartFencedPairWithThreeApplied(east, west));
  auto expect_primary_as_before = [&](const std::string& when) {
    const v1::StatusReply e = east->Status(), w = west->Status();
    EXPECT_EQ(e.role(), "primary") << when;
    EXPECT_EQ(e.state(), "replicating") << when;
    EXPECT_EQ(e.epoch(), 1u) << when;
    EXPECT_FALSE(e.fenced()) << when;
    EXPECT_FALSE(db_[0].fenced()) << when;
    EXPECT_EQ(w.role(), "standby") << when;
    EXPECT_EQ(w.epoch(), 1u) << when;
  };

  // The capture stops during the drain: it meets the fence's marker and loses its slot.
  db_[0].slot_lost_at_marker = true;
  auto rolled_back = east->Reverse(absl::Seconds(120));
  EXPECT_EQ(rolled_back.status().code(), absl::StatusCode::kFailedPrecondition)
      << rolled_back.status();
  EXPECT_NE(rolled_back.status().message().find("rolled back"), std::string::npos)
      << rolled_back.status();
  EXPECT_NE(rolled_back.status().message().find("the capture stopped until an operator acts "
                                                "before it reached the fence's marker"),
            std::string::npos)
      << rolled_back.status();
  EXPECT_NE(rolled_back.status().message().find("\"ferry_east\" does not exist"), std::string::npos)
      << rolled_back.status();
  expect_primary_as_before("after the rollback");
  EXPECT_EQ(db_[1].applied("east"), Ids(1, 3));

  // Stopped before the switchover: refused at the first check.
  auto refused = east->Reverse(absl::Seconds(120));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("region east's capture stopped until an operator "
                                            "acts (replication slot \"ferry_east\" does not "
                                            "exist)"),
            std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("nothing changed"), std::string::npos)
      << refused.status();
  EXPECT_EQ(refused.status().message().find("rolled back"), std::string::npos) << refused.status();
  expect_primary_as_before("after the refusal");
}

// The peer's answer to a probe is outside input: a standby that claims an apply error of a
// megabyte is refused as any stopped apply, with at most 1,024 bytes of its text in the message.
TEST_F(DaemonRoleTest, AHostilePeersApplyErrorIsCappedInTheRefusal) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  class HostileStandby final : public v1::RegionControl::Service {
    grpc::Status Probe(grpc::ServerContext*, const v1::ProbeRequest*,
                       v1::RegionInfo* info) override {
      info->set_region("west");
      info->set_role("standby");
      info->set_state("replicating");
      info->set_epoch(1);
      info->set_apply_stopped_error(std::string(size_t{1} << 20, 'x'));
      return grpc::Status::OK;
    }
  } hostile;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", ports_[1]),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&hostile);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  with_fence_ = true;
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  auto refused = east->Reverse(absl::Seconds(30));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("region west's apply stopped for good (" +
                                            std::string(1024, 'x') + "...): "),
            std::string::npos);
  EXPECT_LT(refused.status().message().size(), 1200u);
  const v1::StatusReply e = east->Status();
  EXPECT_EQ(e.role(), "primary");
  EXPECT_EQ(e.state(), "replicating");
  EXPECT_FALSE(e.fenced());
  east->Shutdown(absl::ZeroDuration());
  server->Shutdown();
}

// The peer's control calls are checked before anything happens: token, region, operation id,
// epochs. A refused switchover leaves the standby a standby.
TEST_F(DaemonRoleTest, HostileControlCallsAreRefused) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  token_ = "the replication token";
  auto west = StartRegion(1);
  ASSERT_NE(west, nullptr);
  auto deadline = [] { return absl::Now() + absl::Seconds(5); };
  v1::SwitchoverRequest request;
  request.set_epoch(1);
  request.set_new_epoch(2);
  request.set_operation("reverse-1-0000abcd");
  request.set_through_seq(1);

  auto forger = ControlClient(1, "not the token", "east");
  ASSERT_NE(forger, nullptr);
  EXPECT_EQ(forger->Probe("", deadline()).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(forger->Switchover(request, deadline()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(forger->Reverse(absl::Seconds(5), deadline()).status().code(),
            absl::StatusCode::kUnauthenticated);
  v1::QuarantineBatch kept;
  kept.set_operation("rejoin-2-0000abcd");
  kept.add_changes()->set_op("insert");
  EXPECT_EQ(forger->Quarantine(kept, deadline()).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(forger->RejoinRepair("rejoin-2-0000abcd", true, deadline()).status().code(),
            absl::StatusCode::kUnauthenticated);
  auto mallory = ControlClient(1, token_, "mallory");
  ASSERT_NE(mallory, nullptr);
  EXPECT_EQ(mallory->Quarantine(kept, deadline()).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(mallory->RejoinRepair("rejoin-2-0000abcd", false, deadline()).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(mallory->Probe("", deadline()).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(mallory->Switchover(request, deadline()).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto itself = ControlClient(1, token_, "west");
  EXPECT_EQ(itself->Probe("", deadline()).status().code(), absl::StatusCode::kPermissionDenied);

  auto east = ControlClient(1, token_, "east");
  v1::SwitchoverRequest bad = request;
  for (const std::string& op :
       {std::string("reverse-"), std::string("x-1"), std::string("reverse-1;DROP"),
        "reverse-" + std::string(65, 'a'), std::string("reverse-1\n2")}) {
    bad.set_operation(op);
    EXPECT_EQ(east->Switchover(bad, deadline()).status().code(), absl::StatusCode::kInvalidArgument)
        << op;
  }
  for (const std::string& op : {std::string("rejoin-"), std::string("reverse-1-2"),
                                std::string("rejoin-1'; --"), "rejoin-" + std::string(65, 'a')}) {
    kept.set_operation(op);
    EXPECT_EQ(east->Quarantine(kept, deadline()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << op;
    EXPECT_EQ(east->RejoinRepair(op, true, deadline()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << op;
  }
  // Well formed, to a region that keeps no quarantine and runs no verifier: refused, nothing
  // changed.
  kept.set_operation("rejoin-2-0000abcd");
  EXPECT_FALSE(east->Quarantine(kept, deadline()).ok());
  EXPECT_FALSE(east->RejoinRepair("rejoin-2-0000abcd", true, deadline()).ok());
  bad = request;
  bad.set_new_epoch(7);  // not one past the epoch
  EXPECT_EQ(east->Switchover(bad, deadline()).status().code(), absl::StatusCode::kInvalidArgument);
  bad = request;
  bad.set_epoch(5);  // a caller at another epoch
  bad.set_new_epoch(6);
  auto stale = east->Switchover(bad, deadline());
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  // An aborted switchover never flips afterwards.
  ASSERT_TRUE(east->Probe(request.operation(), deadline()).ok());
  auto aborted = east->Switchover(request, deadline());
  EXPECT_EQ(aborted.status().code(), absl::StatusCode::kFailedPrecondition) << aborted.status();
  EXPECT_NE(aborted.status().message().find("was aborted"), std::string::npos) << aborted.status();
  const v1::StatusReply w = west->Status();
  EXPECT_EQ(w.role(), "standby");
  EXPECT_EQ(w.epoch(), 1u);
  EXPECT_EQ(w.state(), "replicating");
}

TEST_F(DaemonRoleTest, PersistedRoleAndPausedFlagSurviveARestart) {
  {
    auto east = StartRegion(0);
    ASSERT_NE(east, nullptr);
    auto was = east->Pause();
    ASSERT_TRUE(was.ok());
    EXPECT_FALSE(*was);
    ASSERT_TRUE(east->ChangeRole(Role::kStandby, absl::ZeroDuration()).ok());
    east->Shutdown(absl::ZeroDuration());
  }
  auto east = StartRegion(0);  // the config still says primary
  ASSERT_NE(east, nullptr);
  const v1::StatusReply s = east->Status();
  EXPECT_EQ(s.role(), "standby");
  EXPECT_EQ(s.epoch(), 2u);
  EXPECT_TRUE(s.paused());
}

// A pipeline that cannot start (its sink's database unreachable) fails /healthz with the reason
// and is tried again by the daemon until it starts, without a restart.
TEST_F(DaemonRoleTest, PipelineThatCannotStartFailsHealthzAndIsRetried) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  fail_sink_ = true;
  const absl::Status changed = east->ChangeRole(Role::kStandby, absl::ZeroDuration());
  EXPECT_EQ(changed.code(), absl::StatusCode::kUnavailable) << changed;
  auto health =
      testing::HttpGet(absl::StrCat("http://127.0.0.1:", east->metrics_port(), "/healthz"));
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 503);
  EXPECT_NE(health->body.find("target database unreachable"), std::string::npos) << health->body;
  EXPECT_NE(east->Status().last_error().find("target database unreachable"), std::string::npos);
  EXPECT_EQ(east->Status().role(), "standby");  // the flip itself is durable
  fail_sink_ = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);  // bounded poll: retried each second
  while (Http(*east, "/healthz") != 200 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Http(*east, "/healthz"), 200);
  EXPECT_EQ(east->Status().last_error(), "");
}

// Child half of the test below: east changes role and is killed at the armed kill point. Runs
// only when the parent re-executes this binary with FERRY_ROLE_CHILD_DIR set.
TEST_F(DaemonRoleTest, ChildChangesRoleUntilKilled) {
  if (ChildDir() == nullptr) GTEST_SKIP() << "runs only as the child of RoleChangeKilledAtEachStep";
  auto east = StartRegion(0);
  ASSERT_NE(east, nullptr);
  ASSERT_TRUE(east->ChangeRole(Role::kStandby, absl::ZeroDuration()).ok());
  ADD_FAILURE() << "the kill point was never reached";
}

// SIGKILL at each step of a role change (named kill points), then a restart: killed before the
// flip is durable, the region comes back as it was; killed after, in its new role. Never in
// between, never with the operation left running.
TEST_F(DaemonRoleTest, RoleChangeKilledAtEachStepRestartsConsistent) {
  if (ChildDir() != nullptr) GTEST_SKIP() << "parent only";
  struct Step {
    const char* point;
    const char* role;
    uint64_t epoch;
  };
  for (const Step& step :
       {Step{"role.switching", "primary", 1}, Step{"role.flipped", "standby", 2}}) {
    SCOPED_TRACE(step.point);
    testing::TempDir child_dir("ferry-daemon-role-child");
    ports_[0] = testing::FreePort();
    auto child = testing::ChildProcess::Spawn(
        {"/proc/self/exe", "--gtest_filter=DaemonRoleTest.ChildChangesRoleUntilKilled"},
        child_dir.File("child.log"),
        {"FERRY_ROLE_CHILD_DIR=" + child_dir.path(),
         std::string("FERRY_KILL_POINT=") + step.point});
    ASSERT_TRUE(child.ok()) << child.status();
    const int status = (*child)->Wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child status " << status << ", see " << child_dir.File("child.log");
    // Restart east over the child's data_dir (the config still says primary).
    base_ = child_dir.path();
    auto east = StartRegion(0);
    ASSERT_NE(east, nullptr);
    const v1::StatusReply s = east->Status();
    EXPECT_EQ(s.role(), step.role);
    EXPECT_EQ(s.epoch(), step.epoch);
    EXPECT_EQ(s.state(), "replicating");
    EXPECT_EQ(s.operation(), "");
    EXPECT_EQ(Http(*east, "/primary"), std::string(step.role) == "primary" ? 200 : 503);
    east->Shutdown(absl::ZeroDuration());
  }
}

}  // namespace
}  // namespace ferry
