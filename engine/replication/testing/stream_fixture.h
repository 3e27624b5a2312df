// The replication stream tests' fixture: an outbound log and a standby region (inbound log,
// Receiver, gRPC server on 127.0.0.1) that a test restarts, and shippers it starts against it.
// Used by replication_stream_test.cc (delivery, faults) and replication_handshake_test.cc
// (what the receiver refuses).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "engine/log/durable_log.h"
#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/temp_dir.h"

namespace ferry::replication {

class ReplicationStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DurableLog::Open({.path = dir_.File("outbound")});
    ASSERT_TRUE(log.ok()) << log.status();
    outbound_ = *std::move(log);
    StartStandby();
  }

  void StartStandby(uint64_t epoch = 1, const std::string& expected_region = "east",
                    std::shared_ptr<rocksdb::FileSystem> file_system = nullptr) {
    standby_.reset();
    ::ferry::replication::testing::StandbyRegion::Options options;
    options.dir = dir_.path();
    options.file_system = std::move(file_system);
    options.receiver.region = "west";
    options.receiver.expected_peer_region = expected_region;
    options.receiver.token = "secret-token";
    options.initial_epoch = epoch;
    auto standby = ::ferry::replication::testing::StandbyRegion::Start(options);
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = *std::move(standby);
  }

  std::unique_ptr<Shipper> StartShipper(ShipperOptions options, DurableLog* log = nullptr) {
    auto shipper = Shipper::Start(options, log != nullptr ? log : outbound_.get());
    EXPECT_TRUE(shipper.ok()) << shipper.status();
    return shipper.ok() ? *std::move(shipper) : nullptr;
  }

  bool AllAcked(Shipper* shipper, absl::Duration timeout = absl::Seconds(60)) {
    return shipper->WaitForAck(outbound_->next_seq(), absl::Now() + timeout);
  }

  // Waits until the shipper has reported an error containing `text`.
  static bool ErrorMentions(Shipper* shipper, const std::string& text) {
    return ::ferry::replication::testing::WaitUntil(
        [&] { return shipper->status().last_error.find(text) != std::string::npos; });
  }

  ::ferry::testing::TempDir dir_{"ferry-stream"};
  std::unique_ptr<DurableLog> outbound_;
  std::unique_ptr<::ferry::replication::testing::StandbyRegion> standby_;
};

}  // namespace ferry::replication
