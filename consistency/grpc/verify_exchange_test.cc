// The verify exchange over real gRPC (TCP on loopback) between a coordinator and the standby's
// VerifyPeerService, with two real Postgres clusters; and hostile peers on both ends. The
// standby's apply is a recording CutBarrier here (the real one: engine/apply's tests and the
// two-ferryd tests in tests/e2e/verify_e2e_test.cc).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>

#include "absl/synchronization/notification.h"
#include "connectors/postgres/common/pg_connection.h"
#include "consistency/grpc/verify_client.h"
#include "consistency/grpc/verify_service.h"
#include "consistency/postgres/region_verify.h"
#include "consistency/testing/memory_table_side.h"
#include "consistency/testing/two_clusters.h"
#include "tests/support/pg_cluster.h"

namespace ferry::consistency {
namespace {

using ferry::testing::PgCluster;
namespace testing = ::ferry::consistency::testing;

class RecordingBarrier : public CutBarrier {
 public:
  absl::Status Freeze() override {
    absl::MutexLock lock(&mu_);
    if (!refuse_.empty()) return absl::FailedPreconditionError(refuse_);
    ++freezes_;
    return absl::OkStatus();
  }
  void SetCut(uint64_t position) override {
    absl::MutexLock lock(&mu_);
    position_ = position;
    if (on_set_cut_) on_set_cut_();
  }
  // Runs in SetCut: after the primary's cut, before either region scans.
  void OnSetCut(std::function<void()> f) {
    absl::MutexLock lock(&mu_);
    on_set_cut_ = std::move(f);
  }
  absl::Status WaitForCut(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    return unreachable_;
  }
  // WaitForCut answers `why` (OK: the cut is reached).
  void CutUnreachable(absl::Status why) {
    absl::MutexLock lock(&mu_);
    unreachable_ = std::move(why);
  }
  void Release() override {
    absl::MutexLock lock(&mu_);
    ++releases_;
    if (!released_.HasBeenNotified()) released_.Notify();
  }
  uint64_t applied_seq() override { return 7; }
  void Refuse(const std::string& why) {
    absl::MutexLock lock(&mu_);
    refuse_ = why;
  }
  int freezes() {
    absl::MutexLock lock(&mu_);
    return freezes_;
  }
  int releases() {
    absl::MutexLock lock(&mu_);
    return releases_;
  }
  uint64_t position() {
    absl::MutexLock lock(&mu_);
    return position_;
  }
  absl::Notification released_;

 private:
  absl::Mutex mu_;
  std::string refuse_;
  absl::Status unreachable_ ABSL_GUARDED_BY(mu_);
  int freezes_ = 0;
  int releases_ = 0;
  uint64_t position_ = 0;
  std::function<void()> on_set_cut_;
};

constexpr char kToken[] = "s3cret-token";

class VerifyExchangeTest : public testing::TwoClustersTest {
 protected:
  void SetUp() override {
    VerifyServiceOptions options;
    options.region = "west";
    options.token = kToken;
    options.barrier = &barrier_;
    options.max_ranges = 64;
    options.open_peer = []() -> absl::StatusOr<std::unique_ptr<StandbyPeer>> {
      auto session = VerifySession::Open(standby_->dsn(), std::nullopt);
      if (!session.ok()) return session.status();
      return std::unique_ptr<StandbyPeer>(new LocalStandbyPeer(std::move(*session)));
    };
    service_ = std::make_unique<VerifyPeerService>(options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.SetMaxReceiveMessageSize(1 << 20);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    server_->Shutdown();
    server_.reset();
    service_.reset();
  }

  std::unique_ptr<GrpcStandbyPeer> Peer(const std::string& id, const std::string& token = kToken) {
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
    return std::make_unique<GrpcStandbyPeer>(channel,
                                             GrpcPeerOptions{.verify_id = id, .token = token});
  }
  std::unique_ptr<v1::VerifyPeer::Stub> Stub() {
    return v1::VerifyPeer::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  static absl::StatusOr<RegionVerifyResult> Run(
      GrpcStandbyPeer& peer, const std::string& id, std::vector<TableName> tables,
      absl::Duration max_cut_age = RegionVerifyOptions().max_cut_age) {
    RegionVerifyOptions options;
    options.primary_dsn = primary_->dsn();
    options.verify_id = id;
    options.max_cut_age = max_cut_age;
    options.verify.tables = std::move(tables);
    options.verify.leaf_bits = 6;
    return RunRegionVerify(options, peer);
  }

  RecordingBarrier barrier_;
  std::unique_ptr<VerifyPeerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(VerifyExchangeTest, AVerifyOverGrpcReportsExactlyAndCostsLittleWhenEqual) {
  Both(
      "CREATE TABLE big (id int PRIMARY KEY, v text);"
      "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 50000) g;"
      "CREATE TABLE small (id int PRIMARY KEY, v text);"
      "INSERT INTO small SELECT g, 'v' FROM generate_series(1, 1000) g");
  ASSERT_TRUE(standby_->Exec("UPDATE small SET v = 'w' WHERE id = 500").ok());
  auto peer = Peer("v1");
  auto result = Run(*peer, "v1", {{"public", "big"}, {"public", "small"}});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->report.tables.size(), 2u);
  EXPECT_TRUE(result->report.tables[0].equal());
  EXPECT_EQ(result->report.tables[1].changed, (std::vector<Values>{{"500"}}));
  EXPECT_EQ(result->report.differences(), 1u);
  EXPECT_EQ(result->standby_region, "west");
  // The cut: frozen once, released once, at the primary's slot position.
  EXPECT_EQ(barrier_.freezes(), 1);
  EXPECT_EQ(barrier_.releases(), 1);
  EXPECT_EQ(barrier_.position(), result->cut_position);
  EXPECT_GT(result->cut_position, 0u);
  // 51,000 rows, one difference: a few kilobytes on the wire.
  EXPECT_LT(result->wire_bytes, 64u * 1024) << result->wire_bytes;
  // The marker committed after the cut, and no slot is left behind.
  auto slots = primary_->QueryValue("SELECT count(*) FROM pg_replication_slots");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
}

TEST_F(VerifyExchangeTest, TablesPastTheCutsAgeAreComparedAtNewCuts) {
  // A cut expires at once: each table after the first is read at a new cut (its own freeze,
  // slot and snapshot), and each is still compared exactly.
  Both(
      "CREATE TABLE recut_a (id int PRIMARY KEY, v text);"
      "INSERT INTO recut_a SELECT g, 'v' FROM generate_series(1, 3000) g;"
      "CREATE TABLE recut_b (id int PRIMARY KEY, v text);"
      "INSERT INTO recut_b SELECT g, 'v' FROM generate_series(1, 3000) g;"
      "CREATE TABLE recut_c (id int PRIMARY KEY, v text);"
      "INSERT INTO recut_c SELECT g, 'v' FROM generate_series(1, 3000) g");
  ASSERT_TRUE(standby_
                  ->Exec("UPDATE recut_a SET v = 'w' WHERE id = 7;"
                         "DELETE FROM recut_c WHERE id = 2999")
                  .ok());
  auto peer = Peer("vr");
  auto result =
      Run(*peer, "vr", {{"public", "recut_a"}, {"public", "recut_b"}, {"public", "recut_c"}},
          absl::ZeroDuration());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cuts, 3);
  EXPECT_EQ(barrier_.freezes(), 3);
  EXPECT_EQ(barrier_.releases(), 3);
  ASSERT_EQ(result->report.tables.size(), 3u);
  EXPECT_EQ(result->report.tables[0].table, "public.recut_a");
  EXPECT_EQ(result->report.tables[0].changed, (std::vector<Values>{{"7"}}));
  EXPECT_TRUE(result->report.tables[1].equal());
  EXPECT_EQ(result->report.tables[2].missing, (std::vector<Values>{{"2999"}}));
  EXPECT_EQ(result->report.differences(), 2u);
  EXPECT_TRUE(result->report.remaining.empty());
  EXPECT_GE(result->report.primary_rows_read, 9000u);  // every cut's scans counted
  auto slots = primary_->QueryValue("SELECT count(*) FROM pg_replication_slots");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
  // With the default age (a minute) both tables are read at one cut.
  auto once = Peer("vr1");
  auto single = Run(*once, "vr1", {{"public", "recut_a"}, {"public", "recut_b"}});
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->cuts, 1);
}

TEST_F(VerifyExchangeTest, ATableDroppedInBothRegionsBeforeItsCutIsANote) {
  Both(
      "CREATE TABLE drop_first (id int PRIMARY KEY); INSERT INTO drop_first VALUES (1);"
      "CREATE TABLE drop_later (id int PRIMARY KEY); INSERT INTO drop_later VALUES (1)");
  auto peer = Peer("vd");
  RegionVerifyOptions options;
  options.primary_dsn = primary_->dsn();
  options.verify_id = "vd";
  options.max_cut_age = absl::ZeroDuration();
  options.verify.tables = {{"public", "drop_first"}, {"public", "drop_later"}};
  options.verify.on_table = [](const TableDifferences&) {
    Both("DROP TABLE IF EXISTS drop_later");
  };
  auto result = RunRegionVerify(options, *peer);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->cuts, 2);
  ASSERT_EQ(result->report.tables.size(), 2u);
  EXPECT_TRUE(result->report.tables[0].equal());
  EXPECT_EQ(result->report.tables[1].notes,
            (std::vector<std::string>{"dropped in both regions during the verify"}));
  // Named at the first cut and missing in both, it is still an error.
  auto gone = Peer("vd2");
  auto missing = Run(*gone, "vd2", {{"public", "drop_later"}});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

TEST_F(VerifyExchangeTest, ADifferentTableSetIsReported) {
  ASSERT_TRUE(primary_->Exec("CREATE TABLE only_primary (id int PRIMARY KEY)").ok());
  ASSERT_TRUE(standby_->Exec("CREATE TABLE only_standby (id int PRIMARY KEY)").ok());
  auto peer = Peer("v2");
  auto result = Run(*peer, "v2", {});  // every table of either region
  ASSERT_TRUE(result.ok()) << result.status();
  std::map<std::string, std::vector<std::string>> schema;
  for (const auto& t : result->report.tables) schema[t.table] = t.schema;
  EXPECT_EQ(schema["public.only_primary"],
            (std::vector<std::string>{"table missing on the standby"}));
  EXPECT_EQ(schema["public.only_standby"],
            (std::vector<std::string>{"table extra on the standby"}));
}

TEST_F(VerifyExchangeTest, AWrongOrMissingTokenIsRefused) {
  auto peer = Peer("v3", "wrong");
  EXPECT_EQ(peer->BeginCut(absl::Seconds(5)).status().code(), absl::StatusCode::kUnauthenticated);
  auto none = Peer("v3", "");
  EXPECT_EQ(none->BeginCut(absl::Seconds(5)).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(barrier_.freezes(), 0);
}

TEST_F(VerifyExchangeTest, ANewVerifyEndsTheOldOneWhoseCallsAreThenRefused) {
  // The primary runs one verify at a time: a new BeginCut means the old coordinator is gone.
  auto first = Peer("first");
  ASSERT_TRUE(first->BeginCut(absl::Seconds(30)).ok());
  auto second = Peer("second");
  ASSERT_TRUE(second->BeginCut(absl::Seconds(30)).ok());
  EXPECT_EQ(barrier_.releases(), 1);  // the first's freeze was lifted
  EXPECT_EQ(first->SetCut(1, absl::Seconds(5)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(first->ListTables().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second->ListTables().status().code(), absl::StatusCode::kFailedPrecondition)
      << "no cut taken yet";
  ASSERT_TRUE(second->SetCut(99, absl::Seconds(5)).ok());
  EXPECT_TRUE(second->ListTables().ok());
  first->End();  // ends nothing: not the running verify
  EXPECT_TRUE(second->ListTables().ok());
  second->End();
  EXPECT_EQ(second->ListTables().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(VerifyExchangeTest, APausedStandbyRefusesWithTheReason) {
  barrier_.Refuse("apply is paused on west: resume it first");
  auto peer = Peer("v4");
  auto r = peer->BeginCut(absl::Seconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("paused"), std::string::npos);
}

// A cut the standby's apply can never reach (it stopped for good) ends the verify with the
// barrier's reason and code, not as a timeout; the freeze is lifted.
TEST_F(VerifyExchangeTest, ACutTheStandbyCannotReachEndsTheVerifyWithTheReason) {
  barrier_.CutUnreachable(absl::FailedPreconditionError(
      "apply stopped for good on west (INVALID_ARGUMENT: row does not fit): it cannot reach the "
      "cut"));
  auto peer = Peer("v6");
  ASSERT_TRUE(peer->BeginCut(absl::Seconds(30)).ok());
  const absl::Status set = peer->SetCut(99, absl::Seconds(30));
  EXPECT_EQ(set.code(), absl::StatusCode::kFailedPrecondition) << set;
  EXPECT_NE(set.message().find("verify: apply stopped for good on west"), std::string::npos) << set;
  EXPECT_EQ(barrier_.releases(), 1);
}

TEST_F(VerifyExchangeTest, AFreezeWithoutACutIsLiftedByItself) {
  // The coordinator dies after BeginCut: apply must not stay frozen.
  auto peer = Peer("v5");
  ASSERT_TRUE(peer->BeginCut(absl::Milliseconds(200)).ok());
  ASSERT_TRUE(barrier_.released_.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(barrier_.releases(), 1);
  EXPECT_EQ(peer->SetCut(5, absl::Seconds(5)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(VerifyExchangeTest, HostileRequestsAreRefused) {
  Both("CREATE TABLE h (id int PRIMARY KEY, v text)");
  auto stub = Stub();
  auto call = [&](auto method, const auto& request, auto* reply) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kToken);
    return (stub.get()->*method)(&context, request, reply);
  };
  v1::BeginCutRequest begin;
  begin.set_verify_id("bad id; drop");
  begin.set_cut_timeout_ms(1000);
  v1::BeginCutReply begin_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::BeginCut, begin, &begin_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  begin.set_verify_id("h1");
  begin.set_cut_timeout_ms(0);
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::BeginCut, begin, &begin_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  begin.set_cut_timeout_ms(30000);
  ASSERT_TRUE(call(&v1::VerifyPeer::Stub::BeginCut, begin, &begin_reply).ok());
  v1::SetCutRequest set;
  set.set_verify_id("h1");
  set.set_position(0);
  v1::SetCutReply set_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::SetCut, set, &set_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  set.set_position(12345);
  ASSERT_TRUE(call(&v1::VerifyPeer::Stub::SetCut, set, &set_reply).ok());
  // Digests before a table is open; a table spec naming columns it lacks; leaf_bits too large.
  v1::RangeDigestsRequest digests;
  digests.set_verify_id("h1");
  digests.add_ranges();
  v1::RangeDigestsReply digests_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::RangeDigests, digests, &digests_reply).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::OpenTableRequest open;
  open.set_verify_id("h1");
  open.mutable_table()->set_schema("public");
  open.mutable_table()->set_name("h");
  open.add_columns("id");
  open.add_columns("password");
  open.add_key_columns("id");
  v1::OpenTableReply open_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::OpenTable, open, &open_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  open.set_columns(1, "v");
  open.set_leaf_bits(31);
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::OpenTable, open, &open_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  open.set_leaf_bits(4);
  ASSERT_TRUE(call(&v1::VerifyPeer::Stub::OpenTable, open, &open_reply).ok());
  // Run digests: cut halves of different lengths, more cuts than allowed, a malformed range.
  v1::CutDigestsRequest cuts;
  cuts.set_verify_id("h1");
  cuts.add_cut_low(1);
  v1::CutDigestsReply cuts_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::CutDigests, cuts, &cuts_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  for (int i = 0; i < 100; ++i) {
    cuts.add_cut_low(i);
    cuts.add_cut_high(i);
  }
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::CutDigests, cuts, &cuts_reply).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  cuts.clear_cut_low();
  cuts.clear_cut_high();
  cuts.mutable_range()->mutable_begin()->add_values()->set_text("1");
  cuts.mutable_range()->mutable_begin()->add_values()->set_text("2");  // two values, one column
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::CutDigests, cuts, &cuts_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  cuts.clear_range();
  cuts.add_cut_low(7);
  cuts.add_cut_high(7);  // a cut no row has: one run, and the cut not found
  ASSERT_TRUE(call(&v1::VerifyPeer::Stub::CutDigests, cuts, &cuts_reply).ok());
  ASSERT_EQ(cuts_reply.found_size(), 2);
  EXPECT_TRUE(cuts_reply.found(0));
  EXPECT_FALSE(cuts_reply.found(1));
  // More ranges than allowed; a message over the server's size limit.
  for (int i = 0; i < 100; ++i) digests.add_ranges();
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::RangeDigests, digests, &digests_reply).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  v1::RangeRowsRequest rows;
  rows.set_verify_id("h1");
  rows.mutable_range()->mutable_begin()->add_values()->set_text(std::string(2 << 20, 'x'));
  v1::RangeRowsReply rows_reply;
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::RangeRows, rows, &rows_reply).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A key of the wrong width.
  rows.mutable_range()->mutable_begin()->clear_values();
  rows.mutable_range()->mutable_begin()->add_values()->set_text("1");
  rows.mutable_range()->mutable_begin()->add_values()->set_text("2");
  rows.set_limit(10);
  EXPECT_EQ(call(&v1::VerifyPeer::Stub::RangeRows, rows, &rows_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::VerifyCall end;
  end.set_verify_id("h1");
  v1::EndVerifyReply end_reply;
  EXPECT_TRUE(call(&v1::VerifyPeer::Stub::EndVerify, end, &end_reply).ok());
}

// A standby that forges its answers: too few digests, too many rows.
class ForgingService final : public v1::VerifyPeer::Service {
 public:
  grpc::Status RangeDigests(grpc::ServerContext*, const v1::RangeDigestsRequest*,
                            v1::RangeDigestsReply* reply) override {
    reply->add_digests()->set_count(1);
    reply->add_digests()->set_count(2);
    return grpc::Status::OK;
  }
  grpc::Status RangeRows(grpc::ServerContext*, const v1::RangeRowsRequest* request,
                         v1::RangeRowsReply* reply) override {
    for (uint64_t i = 0; i <= request->limit(); ++i) reply->add_rows();
    return grpc::Status::OK;
  }
  grpc::Status OpenTable(grpc::ServerContext*, const v1::OpenTableRequest*,
                         v1::OpenTableReply*) override {
    return grpc::Status::OK;
  }
};

// Ctrl-C of ferryctl reaches the coordinator as check_cancelled. Both tables are locked by
// another session, so each region's scan waits inside its first statement, which only a
// cancel in Postgres can end: the verify ending while the locks are still held proves that
// both scans were cancelled inside their statements, not finished or left running.
TEST_F(VerifyExchangeTest, ACancelStopsBothScansInsideTheirStatements) {
  const std::string create =
      "CREATE TABLE locked_scan (id int PRIMARY KEY, v text);"
      "INSERT INTO locked_scan SELECT g, 'v' FROM generate_series(1, 5000) g";
  ASSERT_TRUE(primary_->Exec(create).ok());
  ASSERT_TRUE(standby_->Exec(create).ok());
  // Locked once the cut is taken: an ACCESS EXCLUSIVE lock takes a transaction id on the
  // primary, for which the cut's slot would wait.
  std::vector<std::unique_ptr<pg::PgConnection>> lockers;
  for (PgCluster* pg : {primary_, standby_}) {
    auto conn = pg::PgConnection::Connect(pg->dsn());
    ASSERT_TRUE(conn.ok()) << conn.status();
    lockers.push_back(std::move(*conn));
  }
  absl::Status locked = absl::UnknownError("not locked");
  barrier_.OnSetCut([&] {
    locked = lockers[0]->Exec("BEGIN; LOCK TABLE locked_scan IN ACCESS EXCLUSIVE MODE").status();
    if (locked.ok()) {
      locked = lockers[1]->Exec("BEGIN; LOCK TABLE locked_scan IN ACCESS EXCLUSIVE MODE").status();
    }
  });
  std::atomic<bool> cancel{false};
  auto peer = Peer("cancelled");
  RegionVerifyOptions options;
  options.primary_dsn = primary_->dsn();
  options.verify_id = "cancelled";
  options.verify.tables = {{"public", "locked_scan"}};
  options.verify.compare.check_cancelled = [&cancel]() -> absl::Status {
    return cancel.load() ? absl::CancelledError("verify cancelled by the caller")
                         : absl::OkStatus();
  };
  auto done = std::async(std::launch::async, [&] { return RunRegionVerify(options, *peer); });
  // Scans of the verify's cursor, other than the asking session and an earlier probe's session
  // still exiting (its query names the cursor too).
  auto scans = [](PgCluster& pg, const std::string& condition) {
    auto n = pg.QueryValue(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE "
        "'%ferry_verify_scan%' AND query NOT LIKE '%pg_stat_activity%' AND " +
        condition);
    return n.ok() && n->has_value() ? std::stoi(**n) : -1;
  };
  // Bounded poll: both scans are waiting for the lock.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while ((scans(*primary_, "wait_event_type = 'Lock'") != 1 ||
          scans(*standby_, "wait_event_type = 'Lock'") != 1) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    FAIL() << "the verify ended before its cancel: " << done.get().status();
  }
  for (PgCluster* pg : {primary_, standby_}) {
    ASSERT_EQ(scans(*pg, "wait_event_type = 'Lock'"), 1)
        << pg->QueryValue(
                 "SELECT string_agg(state || ' ' || coalesce(wait_event, '-') || ' ' || "
                 "query, E'\\n') FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
               .value_or(std::nullopt)
               .value_or("");
  }
  ASSERT_TRUE(locked.ok()) << locked;
  cancel = true;
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "the verify did not end while the tables stayed locked";
  absl::StatusOr<RegionVerifyResult> result = done.get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  // Nothing is left running on either side, and no slot on the primary (the locks still held).
  const absl::Time gone = absl::Now() + absl::Seconds(30);
  while ((scans(*primary_, "state = 'active'") != 0 || scans(*standby_, "true") != 0) &&
         absl::Now() < gone) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(scans(*primary_, "state = 'active'"), 0);
  EXPECT_EQ(scans(*standby_, "true"), 0);  // the standby's session is closed by EndVerify
  auto slots = primary_->QueryValue(
      "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'ferry_verify%'");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ(**slots, "0");
  EXPECT_EQ(barrier_.freezes(), barrier_.releases());
  for (auto& locker : lockers) ASSERT_TRUE(locker->Exec("COMMIT").ok());
  barrier_.OnSetCut(nullptr);
  // The next verify runs to the end.
  auto again = Run(*Peer("after-cancel"), "after-cancel", {{"public", "locked_scan"}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->report.differences(), 0u);
}

TEST_F(VerifyExchangeTest, EndVerifyCancelsTheStandbysScan) {
  // A coordinator whose call is gone (its ferryd was killed mid-scan: no cancel reaches the
  // standby's call) is ended by EndVerify, which stops the scan inside its statement.
  ASSERT_TRUE(standby_
                  ->Exec("CREATE TABLE IF NOT EXISTS locked_end (id int PRIMARY KEY);"
                         "INSERT INTO locked_end VALUES (1) ON CONFLICT DO NOTHING")
                  .ok());
  auto locker = pg::PgConnection::Connect(standby_->dsn());
  ASSERT_TRUE(locker.ok());
  ASSERT_TRUE((*locker)->Exec("BEGIN; LOCK TABLE locked_end IN ACCESS EXCLUSIVE MODE").ok());
  auto peer = Peer("ended");
  ASSERT_TRUE(peer->BeginCut(absl::Seconds(30)).ok());
  ASSERT_TRUE(peer->SetCut(1, absl::Seconds(30)).ok());
  auto scan = std::async(std::launch::async, [&] {
    return peer->OpenTable(TableSpec{
        .schema = "public", .name = "locked_end", .columns = {"id"}, .key_columns = {"id"}});
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    auto n = standby_->QueryValue(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%ferry_verify_scan%' AND "
        "wait_event_type = 'Lock'");
    if ((n.ok() && **n == "1") || absl::Now() > deadline) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  // Another coordinator's EndVerify of this verify (a second stub, as a restarted ferryd).
  auto ender = Peer("ended");
  ender->End();
  ASSERT_EQ(scan.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(scan.get().ok());
  ASSERT_TRUE((*locker)->Exec("COMMIT").ok());
}

TEST(VerifyClientTest, ForgedAnswersAreRefused) {
  ForgingService forging;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&forging);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  GrpcStandbyPeer peer(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()),
      {.verify_id = "f"});
  auto side = peer.OpenTable(TableSpec{.schema = "public", .name = "t"});
  ASSERT_TRUE(side.ok()) << side.status();
  // One range asked, two digests answered: the comparison refuses the answer.
  std::vector<testing::MemoryRow> rows;
  for (int i = 0; i < 100; ++i) rows.push_back({{std::to_string(i)}, {std::to_string(i)}});
  testing::MemoryTableSide primary(rows);
  ASSERT_TRUE(primary.BuildIndex(3).ok());
  TableDifferences diff;
  CompareStats stats;
  EXPECT_EQ(CompareTable(primary, **side, {}, &diff, &stats).code(), absl::StatusCode::kDataLoss);
  // More rows than the limit.
  EXPECT_EQ((*side)->RangeRows(KeyRange{}, 5).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry::consistency
