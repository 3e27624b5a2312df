// SIGKILL of either side at random (seeded) moments: a shipper process (which also appends to
// its outbound log) and a receiver process, both stream_node, are killed and restarted over their
// log directories. At the end the inbound log must equal the outbound log record by record and
// match the oracle (StreamNodePayload): no gap, no duplicate, nothing lost.
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
#include "engine/replication/stream_node_payload.h"
#include "engine/replication/stream_test_util.h"
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
  std::unique_ptr<ChildProcess> SpawnReceiver() {
    for (int attempt = 0; attempt < 20; ++attempt) {
      std::remove(port_file().c_str());
      auto child = ChildProcess::Spawn(
          {BuiltBinary("stream_node"), "--role=receiver", "--log=" + dir_.File("inbound"),
           absl::StrCat("--listen=127.0.0.1:", port_), "--port_file=" + port_file()},
          dir_.File("receiver.out"));
      EXPECT_TRUE(child.ok()) << child.status();
      if (!child.ok()) return nullptr;
      const bool listening = testing::WaitFor(
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

  std::unique_ptr<ChildProcess> SpawnShipper() {
    auto child = ChildProcess::Spawn(
        {BuiltBinary("stream_node"), "--role=shipper", "--log=" + dir_.File("outbound"),
         absl::StrCat("--peer=127.0.0.1:", port_), absl::StrCat("--produce=", kRecords),
         absl::StrCat("--seed=", seed_)},
        dir_.File("shipper.out"));
    EXPECT_TRUE(child.ok()) << child.status();
    return child.ok() ? *std::move(child) : nullptr;
  }

  std::string port_file() const { return dir_.File("port"); }

  TempDir dir_{"ferry-crash"};
  uint64_t seed_ = 20240601;
  int port_ = 0;
};

TEST_F(CrashTest, KillingEitherSideAtRandomLosesAndDuplicatesNothing) {
  if (const char* s = std::getenv("FERRY_CRASH_SEED")) seed_ = std::strtoull(s, nullptr, 10);
  std::cerr << "crash test seed " << seed_ << " (FERRY_CRASH_SEED), dir " << dir_.path() << "\n";
  std::mt19937_64 rng(seed_);

  auto receiver = SpawnReceiver();
  ASSERT_NE(receiver, nullptr);
  auto shipper = SpawnShipper();
  ASSERT_NE(shipper, nullptr);
  int kills = 0;
  for (int round = 0; round < 16 && shipper->running(); ++round) {
    // Random moments: the point of the test, not a synchronization.
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 600));
    if (!shipper->running()) break;
    if (rng() % 2 == 0) {
      receiver->Kill(SIGKILL);
      receiver->Wait();
      receiver = SpawnReceiver();
      ASSERT_NE(receiver, nullptr);
    } else {
      shipper->Kill(SIGKILL);
      shipper->Wait();
      shipper = SpawnShipper();
      ASSERT_NE(shipper, nullptr);
    }
    ++kills;
  }
  std::cerr << kills << " kills\n";
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
