// The replication stream end to end: real gRPC over TCP on 127.0.0.1, real RocksDB logs on disk,
// network faults from tests/support/fault_proxy.h. Delivery, pipelining, faults and the
// shipper's reports; what the receiver refuses is in replication_handshake_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/base/clock.h"
#include "engine/log/fault_injection_fs.h"
#include "engine/log/log_names.h"
#include "engine/replication/receiver.h"
#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_fixture.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/fault_proxy.h"

namespace ferry::replication {
namespace {

using ::ferry::testing::FaultProxy;
using testing::AppendRecords;
using testing::CompareLogs;
using testing::StandbyRegion;
using testing::TestShipperOptions;
using testing::WaitUntil;

TEST_F(ReplicationStreamTest, ShipsEveryRecordOnceAndPersistsTheAckedCursor) {
  ASSERT_TRUE(AppendRecords(outbound_.get(), 1500).ok());
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AllAcked(shipper.get()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 500).ok());  // while connected
  ASSERT_TRUE(AllAcked(shipper.get()));
  ShipperStatus s = shipper->status();
  EXPECT_TRUE(s.connected);
  EXPECT_EQ(s.peer_region, "west");
  EXPECT_EQ(s.acked_next_seq, 2001u);
  EXPECT_EQ(s.unacked_records, 0u);
  EXPECT_EQ(s.unacked_age, absl::ZeroDuration());
  EXPECT_LT(s.wire_bytes, s.uncompressed_bytes);  // zstd
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
  auto acked = outbound_->GetCursor(kAckedCursor);
  ASSERT_TRUE(acked.ok());
  EXPECT_EQ(acked->value_or(0), 2001u);
  auto log_id = outbound_->GetState(kLogIdState);
  ASSERT_TRUE(log_id.ok() && log_id->has_value());
  EXPECT_EQ(**log_id, shipper->log_id());
  auto recorded = standby_->inbound()->GetState(kPeerLogIdState);
  ASSERT_TRUE(recorded.ok() && recorded->has_value());
  EXPECT_EQ(**recorded, shipper->log_id());
  ReceiverStatus r = standby_->receiver()->status();
  EXPECT_EQ(r.durable_next_seq, 2001u);
  EXPECT_EQ(r.streams_accepted, 1u);
}

// A switchover's drain stops the shipper while writes wait: the stop must not wait out the
// writer's wait for the next record (an hour here).
TEST_F(ReplicationStreamTest, StopEndsTheWritersWaitForTheNextRecord) {
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.poll_slice = absl::Hours(1);
  options.keepalive_interval = absl::Hours(1);
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AllAcked(shipper.get()));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    shipper->Stop();
    stopped = true;
  });
  const bool prompt = WaitUntil([&] { return stopped.load(); });
  if (!prompt) {
    EXPECT_TRUE(AppendRecords(outbound_.get(), 1).ok());  // a record ends the wait
  }
  stopper.join();
  EXPECT_TRUE(prompt) << "Stop() waited out the writer's wait for the next record";
}

TEST_F(ReplicationStreamTest, ReportsThePeersAppliedCursor) {
  ASSERT_TRUE(standby_->inbound()->SetCursor(kAppliedCursor, 0).ok());
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  ASSERT_TRUE(standby_->inbound()->SetCursor(kAppliedCursor, 8).ok());
  ASSERT_TRUE(WaitUntil([&] { return shipper->status().peer_applied_seq == 8; }));  // via Pings
  shipper->Stop();
  EXPECT_EQ(outbound_->GetCursor(kPeerAppliedCursor)->value_or(0), 8u);
}

// Issue #14: the standby's apply state (stopped tables, conflicts, error) reaches the primary's
// shipper in the Welcome and in acks when it changes. It is untrusted: a hostile or broken peer
// sending 500 tables and 2 KB strings of multi-byte characters is kept to 100 tables and 1 KiB
// strings cut at a character boundary.
TEST_F(ReplicationStreamTest, CarriesThePeersApplyStateBoundedAndSanitized) {
  absl::Mutex mu;
  ferry::v1::PeerApplyState state;
  {
    absl::MutexLock lock(&mu);
    state.set_conflicts(2);
    auto* t = state.add_stopped_tables();
    t->set_table("public.t");
    t->set_reason("column x missing");
    t->set_seq(7);
    state.set_stopped_tables_total(1);
  }
  standby_.reset();
  StandbyRegion::Options options;
  options.dir = dir_.path();
  options.receiver.region = "west";
  options.receiver.expected_peer_region = "east";
  options.receiver.token = "secret-token";
  options.receiver.apply_state = [&]() -> std::optional<ferry::v1::PeerApplyState> {
    absl::MutexLock lock(&mu);
    return state;
  };
  auto standby = StandbyRegion::Start(options);
  ASSERT_TRUE(standby.ok()) << standby.status();
  standby_ = *std::move(standby);

  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(WaitUntil([&] { return shipper->status().peer_apply.known; }));  // the Welcome
  PeerApplyReport r = shipper->status().peer_apply;
  ASSERT_EQ(r.stopped_tables.size(), 1u);
  EXPECT_EQ(r.stopped_tables[0].table, "public.t");
  EXPECT_EQ(r.stopped_tables[0].reason, "column x missing");
  EXPECT_EQ(r.stopped_tables[0].seq, 7u);
  EXPECT_EQ(r.conflicts, 2u);

  {  // Hostile values.
    absl::MutexLock lock(&mu);
    state.Clear();
    std::string long_text;
    while (long_text.size() < 2000) long_text += "\xc3\xa9\xe2\x82\xac";  // é€
    for (int i = 0; i < 500; ++i) {
      auto* t = state.add_stopped_tables();
      // Within the test server's 1 MiB message limit (a bigger message ends the stream).
      t->set_table(absl::StrCat("public.t", i, i == 0 ? long_text : ""));
      t->set_reason(i < 100 ? long_text : "r");
      t->set_seq(~uint64_t{0} - i);
    }
    state.set_stopped_tables_total(3);  // less than it sent
    state.set_conflicts(~uint64_t{0});
    state.set_last_error(long_text);
    state.set_failed(true);
  }
  ASSERT_TRUE(AppendRecords(outbound_.get(), 5).ok());  // an ack carries the change
  ASSERT_TRUE(WaitUntil([&] { return shipper->status().peer_apply.failed; }));
  r = shipper->status().peer_apply;
  EXPECT_EQ(r.stopped_tables.size(), PeerApplyReport::kMaxTables);
  EXPECT_EQ(r.stopped_tables_total, 500u);
  EXPECT_EQ(r.conflicts, ~uint64_t{0});
  auto valid_cut = [](const std::string& s) {
    if (s.size() > PeerApplyReport::kMaxText + 3) return false;
    // Ends with "..." after a whole character: no continuation byte without its lead.
    const std::string body = s.substr(0, s.size() - 3);
    size_t i = 0;
    while (i < body.size()) {
      const unsigned char c = static_cast<unsigned char>(body[i]);
      const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 0;
      if (n == 0 || i + n > body.size()) return false;
      i += n;
    }
    return s.substr(s.size() - 3) == "...";
  };
  EXPECT_TRUE(valid_cut(r.last_error));
  EXPECT_TRUE(valid_cut(r.stopped_tables[0].table));
  EXPECT_EQ(r.stopped_tables[1].table, "public.t1");
  for (const auto& t : r.stopped_tables) EXPECT_TRUE(valid_cut(t.reason));
  shipper->Stop();
}

// Batches are pipelined: with a 60 ms round trip, many are in flight at once, and the window
// bounds the unacknowledged bytes.
TEST_F(ReplicationStreamTest, PipelinesBatchesWithinTheWindow) {
  auto proxy = FaultProxy::Start("127.0.0.1", standby_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->SetLatency(absl::Milliseconds(30));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 3000).ok());
  ShipperOptions options = TestShipperOptions((*proxy)->address());
  options.max_batch_bytes = 1024;
  options.window_bytes = 32 << 10;
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AllAcked(shipper.get()));
  const ShipperStatus s = shipper->status();
  EXPECT_GT(s.max_inflight_batches, 4u);
  // At most one record (< 500 bytes with its framing) beyond the window.
  EXPECT_LE(s.max_inflight_bytes, options.window_bytes + 512);
  EXPECT_GT(s.batches, 100u);
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

TEST_F(ReplicationStreamTest, ResumesExactlyAcrossDroppedConnections) {
  auto proxy = FaultProxy::Start("127.0.0.1", standby_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ShipperOptions options = TestShipperOptions((*proxy)->address());
  options.max_batch_bytes = 2048;
  auto shipper = StartShipper(options);
  for (int round = 0; round < 10; ++round) {
    const uint64_t round_first = outbound_->next_seq();
    ASSERT_TRUE(AppendRecords(outbound_.get(), 300).ok());
    // Drop an established connection once it shipped something of this round (likely not all
    // of it). Dropping between two connections would drop nothing, and the round would then
    // count the reconnect of the round before.
    uint64_t connects = 0;
    ASSERT_TRUE(WaitUntil([&] {
      const ShipperStatus s = shipper->status();
      connects = s.connects;
      return s.connected && s.shipped_next_seq > round_first;
    }));
    (*proxy)->DropConnections();
    ASSERT_TRUE(WaitUntil([&] { return shipper->status().connects > connects; }));
  }
  ASSERT_TRUE(AllAcked(shipper.get()));
  const ShipperStatus s = shipper->status();
  EXPECT_GE(s.connects, 10u);
  EXPECT_GE(s.disconnects, 10u);
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

TEST_F(ReplicationStreamTest, SurvivesAShortPartition) {
  auto proxy = FaultProxy::Start("127.0.0.1", standby_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ShipperOptions options = TestShipperOptions((*proxy)->address());
  options.ack_timeout = absl::Milliseconds(800);
  options.connect_timeout = absl::Milliseconds(800);
  options.keepalive_interval = absl::Milliseconds(200);
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 200).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));

  (*proxy)->SetBlackhole(true);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 500).ok());
  // The shipper notices the partition through its ack timeout and keeps trying.
  ASSERT_TRUE(ErrorMentions(shipper.get(), "DEADLINE_EXCEEDED"));
  EXPECT_FALSE(shipper->status().connected);
  EXPECT_GT(shipper->status().unacked_records, 0u);
  absl::SleepFor(absl::Seconds(2));  // the partition lasts (not a synchronization)
  (*proxy)->SetBlackhole(false);
  ASSERT_TRUE(AllAcked(shipper.get()));
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

TEST_F(ReplicationStreamTest, ReceiverThatCannotWriteStopsAcknowledgingAndNothingIsLost) {
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  standby_->inbound()->Close();  // every Append now fails
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(ErrorMentions(shipper.get(), "inbound log cannot write"));
  EXPECT_EQ(shipper->status().acked_next_seq, 101u);
  // The receiver records the error when its handler ends, which may come after the shipper read
  // the StreamError frame.
  EXPECT_TRUE(WaitUntil([&] {
    return standby_->receiver()->status().last_error.find("UNAVAILABLE") != std::string::npos;
  })) << standby_->receiver()->status().last_error;
  // The disk comes back (the log is reopened on the same port).
  ASSERT_TRUE(standby_->Restart().ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

// The disk under the inbound log fills up (an injected ENOSPC, not a closed log): the receiver
// stops acknowledging, the shipper waits and keeps everything, and once space is back and the
// receiver restarts, the inbound log catches up exactly.
TEST_F(ReplicationStreamTest, ReceiverWithAFullDiskStopsAcknowledgingAndNothingIsLost) {
  auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
  StartStandby(1, "east", fs);
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  fs->SetFreeSpace(0);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(ErrorMentions(shipper.get(), "inbound log cannot write"));
  EXPECT_EQ(shipper->status().acked_next_seq, 101u);
  EXPECT_EQ(standby_->inbound()->next_seq(), 101u);
  fs->SetFreeSpace(std::nullopt);
  ASSERT_TRUE(standby_->Restart().ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

// The receiver reads on while its inbound log syncs, and its next append takes every batch that
// arrived meanwhile in one sync: a standby whose disk syncs slower than the primary appends
// keeps up instead of falling behind by one sync per batch. Fails against a receiver that
// reads the next frame only after its append returned (session 26 built one: the batches are
// not read while the sync is held).
TEST_F(ReplicationStreamTest, BatchesThatArriveWhileTheInboundLogSyncsShareTheNextSync) {
  auto fs = std::make_shared<FaultInjectionFileSystem>(rocksdb::FileSystem::Default());
  StartStandby(1, "east", fs);
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.ack_timeout = absl::Seconds(60);  // the test holds a sync for as long as it needs
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));

  fs->PauseSyncs();
  // A failed assertion below must not leave the receiver's append at the gate: the standby's
  // shutdown would wait for it forever.
  absl::Cleanup resume = [&] { fs->ResumeSyncs(); };
  ASSERT_TRUE(AppendRecords(outbound_.get(), 1).ok());  // its append waits at the gate
  ASSERT_TRUE(fs->WaitForPausedSyncs(1, absl::Now() + absl::Seconds(30)));
  const uint64_t held_batches = standby_->receiver()->status().batches;
  constexpr uint64_t kBatches = 10;
  for (uint64_t i = 1; i <= kBatches; ++i) {
    ASSERT_TRUE(AppendRecords(outbound_.get(), 1).ok());  // one batch each
    ASSERT_TRUE(WaitUntil([&] {
      return standby_->receiver()->status().batches == held_batches + i;
    })) << "batch "
        << i << " was not read while the inbound log's sync was held";
  }
  EXPECT_EQ(shipper->status().acked_next_seq, 11u);
  const uint64_t syncs_before = fs->completed_syncs();
  std::move(resume).Invoke();
  ASSERT_TRUE(AllAcked(shipper.get()));
  // The held sync, then one for all ten batches (a few more for RocksDB's own files at most),
  // not one per batch.
  EXPECT_LT(fs->completed_syncs() - syncs_before, 5u);
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

// Corrupted bytes on the wire: whatever they hit (a payload, a header, a sequence, HTTP/2
// framing), no corrupted record reaches the inbound log, and the stream recovers.
TEST_F(ReplicationStreamTest, CorruptedBytesAreRefusedAndTheStreamRecovers) {
  auto proxy = FaultProxy::Start("127.0.0.1", standby_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  ShipperOptions options = TestShipperOptions((*proxy)->address());
  options.compression_level = 0;  // so that payload bytes travel as they are
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  for (uint64_t skip : {3000, 10000, 25000}) {
    (*proxy)->CorruptBytes(1, ferry::testing::ProxyDirection::kToTarget, skip);
    ASSERT_TRUE(AppendRecords(outbound_.get(), 400).ok());
    ASSERT_TRUE(AllAcked(shipper.get()));
  }
  EXPECT_GE((*proxy)->stats().bytes_corrupted, 3u);
  EXPECT_GE(shipper->status().disconnects, 1u);
  shipper->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

TEST_F(ReplicationStreamTest, PausedShipperSendsNothingUntilResumed) {
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.start_paused = true;
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 50).ok());
  ASSERT_TRUE(WaitUntil([&] { return shipper->status().connected; }));
  EXPECT_FALSE(shipper->WaitForAck(2, absl::Now() + absl::Milliseconds(300)));
  EXPECT_EQ(shipper->status().batches, 0u);
  EXPECT_TRUE(shipper->status().paused);
  shipper->SetPaused(false);
  ASSERT_TRUE(AllAcked(shipper.get()));
}

TEST_F(ReplicationStreamTest, TrimsOnlyAcknowledgedRecords) {
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AllAcked(shipper.get()));
  shipper->SetPaused(true);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 100).ok());
  ASSERT_TRUE(shipper->TrimAcknowledged(/*keep_records=*/10).ok());
  EXPECT_EQ(outbound_->first_seq(), 91u);
  ASSERT_TRUE(shipper->TrimAcknowledged(0).ok());
  EXPECT_EQ(outbound_->first_seq(), 101u);  // 101.. are not acknowledged
  shipper->SetPaused(false);
  ASSERT_TRUE(AllAcked(shipper.get()));
}

// The RPO age on a ManualClock: the time since the shipper first saw the oldest unacked record.
TEST_F(ReplicationStreamTest, ReportsTheUnacknowledgedTail) {
  ManualClock clock(absl::FromUnixSeconds(500));
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.clock = &clock;
  options.start_paused = true;
  auto shipper = StartShipper(options);
  // Connected before the manual clock moves: advancing it past the handshake timeout while the
  // handshake is still under way (a loaded machine) would drop the connection, and the
  // reconnect backoff would then wait for a clock nobody advances.
  ASSERT_TRUE(WaitUntil([&] { return shipper->status().connected; }));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 40).ok());
  EXPECT_EQ(shipper->status().unacked_records, 40u);  // observed now
  clock.Advance(absl::Seconds(5));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ShipperStatus s = shipper->status();
  EXPECT_EQ(s.unacked_records, 50u);
  EXPECT_EQ(s.unacked_age, absl::Seconds(5));
  // Issue #14: the RPO's bytes are the unacknowledged records' payload bytes, exactly (nothing
  // was sent, so no average since start exists to multiply).
  auto records = outbound_->Read(1, 100, size_t{1} << 30);
  ASSERT_TRUE(records.ok());
  uint64_t payload = 0;
  for (const LogRecord& r : *records) payload += r.payload.size();
  EXPECT_EQ(s.unacked_bytes, payload);
  shipper->SetPaused(false);
  ASSERT_TRUE(AllAcked(shipper.get()));
  s = shipper->status();
  EXPECT_EQ(s.unacked_records, 0u);
  EXPECT_EQ(s.unacked_age, absl::ZeroDuration());
  EXPECT_EQ(s.unacked_bytes, 0u);
}

TEST_F(ReplicationStreamTest, ASecondStreamReplacesTheFirst) {
  auto first = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 30).ok());
  ASSERT_TRUE(AllAcked(first.get()));
  // The same log shipped by a second shipper (as after a restart whose old connection lingers).
  auto second = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(WaitUntil([&] { return standby_->receiver()->status().streams_replaced >= 1; }));
  first->Stop();
  ASSERT_TRUE(AppendRecords(outbound_.get(), 30).ok());
  ASSERT_TRUE(AllAcked(second.get()));
  second->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

}  // namespace
}  // namespace ferry::replication
