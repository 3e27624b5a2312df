// SIGKILL of either side at named kill points (engine/base/kill_point.h): a shipper process
// (which also appends to its outbound log) and a receiver process, both stream_node, each started
// to die at a seeded random pass of its point (the receiver after an append is durable and before
// its ack goes out, the shipper right after it took an ack), and restarted over their log
// directories. Kills are tied to the stream's progress, never to wall-clock time. At the end the
// inbound log must equal the outbound log record by record and match the oracle
// (StreamNodePayload): no gap, no duplicate, nothing lost.
//
// FERRY_CRASH_SEED overrides the seed; the seed is printed so that a failure can be replayed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/log/durable_log.h"
#include "engine/replication/testing/stream_node_payload.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace ferry::replication {
namespace {

using ::ferry::testing::BuiltBinary;
using ::ferry::testing::ChildProcess;
using ::ferry::testing::TempDir;

constexpr uint64_t kRecords = 30000;

class CrashTest : public ::testing::Test {
 protected:
  // `kill_point` (NAME@N, or empty) arms the child's FERRY_KILL_POINT.
  std::unique_ptr<ChildProcess> SpawnReceiver(const std::string& kill_point = "") {
    for (int attempt = 0; attempt < 20; ++attempt) {
      std::remove(port_file().c_str());
      auto child = ChildProcess::Spawn(
          {BuiltBinary("stream_node"), "--role=receiver", "--log=" + dir_.File("inbound"),
           absl::StrCat("--listen=127.0.0.1:", port_), "--port_file=" + port_file()},
          dir_.File("receiver.out"), Env(kill_point));
      EXPECT_TRUE(child.ok()) << child.status();
      if (!child.ok()) return nullptr;
      const bool listening = testing::WaitUntil(
          [&] { return std::ifstream(port_file()).good() || !(*child)->running(); },
          absl::Seconds(30));
      if (listening && (*child)->running()) {
        std::ifstream(port_file()) >> port_;
        return *std::move(child);
      }
      // The port of the killed receiver may not be bindable yet: try again.
    }
    ADD_FAILURE() << "the receiver did not start; see " << dir_.File("receiver.out");
    return nullptr;
  }

  std::unique_ptr<ChildProcess> SpawnShipper(const std::string& kill_point = "") {
    auto child = ChildProcess::Spawn(
        {BuiltBinary("stream_node"), "--role=shipper", "--log=" + dir_.File("outbound"),
         absl::StrCat("--peer=127.0.0.1:", port_), absl::StrCat("--produce=", kRecords),
         absl::StrCat("--seed=", seed_)},
        dir_.File("shipper.out"), Env(kill_point));
    EXPECT_TRUE(child.ok()) << child.status();
    return child.ok() ? *std::move(child) : nullptr;
  }

  std::string port_file() const { return dir_.File("port"); }

  static std::vector<std::string> Env(const std::string& kill_point) {
    if (kill_point.empty()) return {};
    return {"FERRY_KILL_POINT=" + kill_point};
  }

  // True when the child died of SIGKILL (its kill point); reaps it.
  static bool DiedAtKillPoint(ChildProcess& child) {
    if (child.running()) return false;
    const int status = child.Wait();
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

  TempDir dir_{"ferry-crash"};
  uint64_t seed_ = 20240601;
  int port_ = 0;
};

TEST_F(CrashTest, KillingEitherSideAtKillPointsLosesAndDuplicatesNothing) {
  if (const char* s = std::getenv("FERRY_CRASH_SEED")) seed_ = std::strtoull(s, nullptr, 10);
  std::cerr << "crash test seed " << seed_ << " (FERRY_CRASH_SEED), dir " << dir_.path() << "\n";
  std::mt19937_64 rng(seed_);

  auto point = [&](const char* name) { return absl::StrCat(name, "@", 1 + rng() % 40); };
  auto receiver = SpawnReceiver(point("receiver.appended"));
  ASSERT_NE(receiver, nullptr);
  auto shipper = SpawnShipper(point("shipper.acked"));
  ASSERT_NE(shipper, nullptr);
  bool receiver_armed = true, shipper_armed = true;
  constexpr int kKills = 16;
  int kills = 0;
  while (kills < kKills) {
    // Both children are armed; wait until one of them reaches its point (or the shipper ends).
    ASSERT_TRUE(testing::WaitUntil([&] { return !receiver->running() || !shipper->running(); },
                                   absl::Seconds(120)))
        << "neither side reached its kill point; see " << dir_.File("shipper.out");
    if (!receiver->running()) {
      ASSERT_TRUE(DiedAtKillPoint(*receiver)) << "see " << dir_.File("receiver.out");
      ++kills;
      receiver_armed = kills < kKills;
      receiver = SpawnReceiver(receiver_armed ? point("receiver.appended") : "");
      ASSERT_NE(receiver, nullptr);
    }
    if (!shipper->running()) {
      const int status = shipper->Wait();
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {  // finished: every record acked
        shipper_armed = false;
        break;
      }
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "shipper status " << status << "; see " << dir_.File("shipper.out");
      ++kills;
      shipper_armed = kills < kKills;
      shipper = SpawnShipper(shipper_armed ? point("shipper.acked") : "");
      ASSERT_NE(shipper, nullptr);
    }
  }
  std::cerr << kills << " kills\n";
  // Disarm whichever child still carries a kill point (one more SIGKILL), so the run can finish.
  if (receiver_armed) {
    receiver->Kill(SIGKILL);
    receiver->Wait();
    receiver = SpawnReceiver();
    ASSERT_NE(receiver, nullptr);
  }
  if (shipper_armed && shipper->running()) {
    shipper->Kill(SIGKILL);
    shipper->Wait();
    shipper = SpawnShipper();
    ASSERT_NE(shipper, nullptr);
  }
  EXPECT_GE(kills, 8);
  const std::optional<int> done = shipper->WaitFor(absl::Seconds(240));
  ASSERT_TRUE(done.has_value()) << "the shipper did not finish; see " << dir_.File("shipper.out");
  ASSERT_TRUE(WIFEXITED(*done) && WEXITSTATUS(*done) == 0) << "shipper status " << *done;
  receiver->Kill(SIGTERM);
  receiver->Wait();

  auto outbound = DurableLog::Open({.path = dir_.File("outbound")});
  ASSERT_TRUE(outbound.ok()) << outbound.status();
  auto inbound = DurableLog::Open({.path = dir_.File("inbound")});
  ASSERT_TRUE(inbound.ok()) << inbound.status();
  EXPECT_EQ((*outbound)->next_seq(), kRecords + 1);
  EXPECT_EQ(testing::CompareLogs(**outbound, **inbound), "");
  // And against the oracle, independently of the outbound log.
  uint64_t seq = 1;
  while (seq <= kRecords) {
    auto records = (*inbound)->Read(seq, 1000, 1 << 20);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_FALSE(records->empty()) << "inbound log ends at " << seq;
    for (const LogRecord& r : *records) {
      ASSERT_EQ(r.seq, seq);
      ASSERT_EQ(r.kind, StreamNodeKind(seq));
      ASSERT_EQ(r.payload, StreamNodePayload(seq)) << "record " << seq;
      ++seq;
    }
  }
  EXPECT_EQ((*inbound)->next_seq(), kRecords + 1);
}

}  // namespace
}  // namespace ferry::replication
