// What the replication stream's receiver refuses, end to end over real gRPC on 127.0.0.1 with
// real RocksDB logs: stale and higher epochs, the wrong region or token, another log, frames a
// hand-made shipper sends (bad batches, hostile Hellos), and a new inbound log that can or
// cannot start after the target's progress. Nothing refused is written.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/log/log_names.h"
#include "engine/replication/batch_codec.h"
#include "engine/replication/receiver.h"
#include "engine/replication/shipper.h"
#include "engine/replication/stream_format.h"
#include "engine/replication/testing/stream_fixture.h"
#include "engine/replication/testing/stream_test_util.h"
#include "proto/replication.grpc.pb.h"

namespace ferry::replication {
namespace {

using testing::AppendRecords;
using testing::StandbyRegion;
using testing::TestShipperOptions;

TEST_F(ReplicationStreamTest, StaleEpochIsRefused) {
  StartStandby(/*epoch=*/5);
  auto shipper = StartShipper(TestShipperOptions(standby_->address(), /*epoch=*/3));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(ErrorMentions(shipper.get(), "stale epoch 3 < 5"));
  EXPECT_NE(shipper->status().last_error.find("FAILED_PRECONDITION"), std::string::npos);
  EXPECT_EQ(shipper->status().connects, 0u);
  EXPECT_NE(standby_->receiver()->status().last_error.find("stale epoch 3 < 5"), std::string::npos);
  EXPECT_EQ(standby_->inbound()->next_seq(), 1u);
  EXPECT_TRUE(standby_->adopted().empty());
}

TEST_F(ReplicationStreamTest, HigherEpochIsAdoptedThenTheOldOneIsFenced) {
  auto shipper = StartShipper(TestShipperOptions(standby_->address(), /*epoch=*/4));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  EXPECT_EQ(standby_->adopted(), std::vector<uint64_t>{4});
  EXPECT_EQ(standby_->epoch(), 4u);
  EXPECT_EQ(shipper->status().peer_epoch, 4u);
  shipper->Stop();
  auto old = StartShipper(TestShipperOptions(standby_->address(), /*epoch=*/3));
  ASSERT_TRUE(ErrorMentions(old.get(), "stale epoch 3 < 4"));
}

TEST_F(ReplicationStreamTest, EpochMovingPastTheStreamEndsIt) {
  auto shipper = StartShipper(TestShipperOptions(standby_->address(), /*epoch=*/1));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  standby_->set_epoch(2);  // this region was promoted
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(ErrorMentions(shipper.get(), "stale epoch 1 < 2"));
  EXPECT_EQ(standby_->inbound()->next_seq(), 11u);
}

TEST_F(ReplicationStreamTest, WrongRegionIsRefused) {
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.region = "south";
  auto shipper = StartShipper(options);
  ASSERT_TRUE(ErrorMentions(shipper.get(), "PERMISSION_DENIED"));
  EXPECT_NE(shipper->status().last_error.find("not the expected peer region"), std::string::npos);
  shipper->Stop();
  options.region = "west";  // the receiver's own name
  StartStandby(1, /*expected_region=*/"");
  options.peer_address = standby_->address();
  shipper = StartShipper(options);
  ASSERT_TRUE(ErrorMentions(shipper.get(), "this region's own name"));
}

TEST_F(ReplicationStreamTest, WrongTokenIsRefused) {
  ShipperOptions options = TestShipperOptions(standby_->address());
  options.token = "secret-tokem";
  auto shipper = StartShipper(options);
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(ErrorMentions(shipper.get(), "wrong replication token"));
  EXPECT_NE(shipper->status().last_error.find("UNAUTHENTICATED"), std::string::npos);
  EXPECT_NE(standby_->receiver()->status().last_error.find("wrong replication token"),
            std::string::npos);
  EXPECT_EQ(standby_->inbound()->next_seq(), 1u);
}

TEST_F(ReplicationStreamTest, AnotherLogAtTheSameEpochIsRefused) {
  auto shipper = StartShipper(TestShipperOptions(standby_->address()));
  ASSERT_TRUE(AppendRecords(outbound_.get(), 10).ok());
  ASSERT_TRUE(AllAcked(shipper.get()));
  shipper->Stop();
  auto other = DurableLog::Open({.path = dir_.File("other")});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(AppendRecords(other->get(), 20).ok());
  auto intruder = StartShipper(TestShipperOptions(standby_->address()), other->get());
  ASSERT_TRUE(ErrorMentions(intruder.get(), "this inbound log copies another log"));
  EXPECT_EQ(standby_->inbound()->next_seq(), 11u);
}

// A valid log id (32 lowercase hex digits) of the hand-made shipper's log.
constexpr char kRawLogId[] = "0123456789abcdef0123456789abcdef";

// A hand-made shipper that sends exactly the frames a test wants.
class RawShipper {
 public:
  explicit RawShipper(const std::string& address, size_t max_message = 64 << 20) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(static_cast<int>(max_message));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = ferry::v1::Replication::NewStub(channel_);
    rw_ = stub_->Replicate(&context_);
  }
  static ferry::v1::ShipperFrame Hello(const std::string& log_id = kRawLogId) {
    ferry::v1::ShipperFrame f;
    ferry::v1::Hello* h = f.mutable_hello();
    h->set_protocol_version(kProtocolVersion);
    h->set_region("east");
    h->set_epoch(1);
    h->set_token("secret-token");
    h->set_log_id(log_id);
    h->set_first_available_seq(1);
    h->set_next_seq(1000);
    return f;
  }
  // Sends the Hello; returns the Welcome's durable_next_seq, or 0 when refused.
  uint64_t Handshake(const ferry::v1::ShipperFrame& hello = Hello()) {
    if (!rw_->Write(hello)) return 0;
    ferry::v1::ReceiverFrame f;
    if (!rw_->Read(&f) || !f.has_welcome()) return 0;
    return f.welcome().durable_next_seq();
  }
  bool Send(const ferry::v1::Batch& batch) {
    ferry::v1::ShipperFrame f;
    *f.mutable_batch() = batch;
    return rw_->Write(f);
  }
  bool Ping() {
    ferry::v1::ShipperFrame f;
    f.mutable_ping();
    return rw_->Write(f);
  }
  // Reads until the stream ends; returns the final status (acks are counted).
  grpc::Status End() {
    ferry::v1::ReceiverFrame f;
    while (rw_->Read(&f)) {
      if (f.has_ack()) last_ack_ = f.ack().durable_next_seq();
    }
    return rw_->Finish();
  }
  // Reads one frame; the Ack's durable_next_seq, or 0.
  uint64_t ReadAck() {
    ferry::v1::ReceiverFrame f;
    return rw_->Read(&f) && f.has_ack() ? f.ack().durable_next_seq() : 0;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ferry::v1::Replication::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<ferry::v1::ShipperFrame, ferry::v1::ReceiverFrame>> rw_;
  uint64_t last_ack_ = 0;
};

ferry::v1::Batch GoodBatch(uint64_t first, int n) {
  std::vector<LogRecord> records;
  for (int i = 0; i < n; ++i) records.push_back({first + i, RecordKind::kTransaction, "p"});
  BatchEncoder encoder(3);
  return *encoder.Encode(records);
}

TEST_F(ReplicationStreamTest, HandMadeBadFramesAreRefused) {
  {
    RawShipper raw(standby_->address());
    ASSERT_EQ(raw.Handshake(), 1u);
    ASSERT_TRUE(raw.Send(GoodBatch(1, 5)));
    EXPECT_EQ(raw.ReadAck(), 6u);
  }
  struct Case {
    std::string name;
    std::function<void(ferry::v1::Batch*)> spoil;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"bad checksum", [](ferry::v1::Batch* b) { b->set_checksum(b->checksum() ^ 1); },
       grpc::StatusCode::DATA_LOSS, "checksum mismatch"},
      {"gap", [](ferry::v1::Batch* b) { b->set_first_seq(7); }, grpc::StatusCode::INVALID_ARGUMENT,
       "batch starts at sequence 7, expected 6"},
      {"duplicate", [](ferry::v1::Batch* b) { b->set_first_seq(5); },
       grpc::StatusCode::INVALID_ARGUMENT, "expected 6"},
      {"count", [](ferry::v1::Batch* b) { b->set_count(4); }, grpc::StatusCode::INVALID_ARGUMENT,
       "the batch declares 4"},
      {"oversized", [](ferry::v1::Batch* b) { b->set_uncompressed_size(uint64_t{1} << 40); },
       grpc::StatusCode::INVALID_ARGUMENT, "exceeds the limit"},
      {"zstd bomb",
       [](ferry::v1::Batch* b) {
         const std::string zeros(size_t{32} << 20, '\0');
         std::string frame(ZSTD_compressBound(zeros.size()), '\0');
         frame.resize(ZSTD_compress(frame.data(), frame.size(), zeros.data(), zeros.size(), 1));
         b->set_blob(frame);
       },
       grpc::StatusCode::DATA_LOSS, "zstd decompression failed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawShipper raw(standby_->address());
    ASSERT_EQ(raw.Handshake(), 6u);
    ferry::v1::Batch batch = GoodBatch(6, 5);
    c.spoil(&batch);
    raw.Send(batch);
    const grpc::Status status = raw.End();
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_NE(status.error_message().find(c.message), std::string::npos) << status.error_message();
    EXPECT_EQ(standby_->inbound()->next_seq(), 6u);
  }
  {
    RawShipper raw(standby_->address());
    raw.Send(GoodBatch(6, 1));  // no hello
    EXPECT_EQ(raw.End().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    RawShipper raw(standby_->address());
    ferry::v1::ShipperFrame hello = RawShipper::Hello();
    hello.mutable_hello()->set_protocol_version(2);
    EXPECT_EQ(raw.Handshake(hello), 0u);
    const grpc::Status status = raw.End();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(status.error_message().find("protocol version 2"), std::string::npos);
  }
  {
    // Above the server's message limit (16 MiB by default): refused by gRPC before decoding.
    RawShipper raw(standby_->address());
    ASSERT_EQ(raw.Handshake(), 6u);
    ferry::v1::Batch batch = GoodBatch(6, 1);
    batch.set_blob(std::string(size_t{17} << 20, 'x'));
    raw.Send(batch);
    EXPECT_EQ(raw.End().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_EQ(standby_->inbound()->next_seq(), 6u);
}

// Hostile Hellos (issue #14): a log id is exactly 32 lowercase hex digits; anything else is
// refused before the receiver records or writes anything, and the stream goes on afterwards.
TEST_F(ReplicationStreamTest, HelloWithAMalformedLogIdIsRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"short", std::string(31, 'a')},
      {"long", std::string(33, 'a')},
      {"oversized", std::string(size_t{1} << 20, 'a')},
      {"uppercase", "0123456789ABCDEF0123456789ABCDEF"},
      {"not hex", std::string(32, 'z')},
      {"NUL bytes", std::string("0123456789abcdef0123456789abcd\0\0", 32)},
      {"sql", "'; DROP TABLE x; --aaaaaaaaaaaaaa"},
  };
  for (const auto& [name, id] : cases) {
    SCOPED_TRACE(name);
    RawShipper raw(standby_->address());
    EXPECT_EQ(raw.Handshake(RawShipper::Hello(id)), 0u);
    const grpc::Status status = raw.End();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("log_id is not 32 lowercase hex digits"),
              std::string::npos)
        << status.error_message();
  }
  {
    // Bytes that are not UTF-8 do not even parse as a Hello (a proto3 string): refused too.
    RawShipper raw(standby_->address());
    EXPECT_EQ(
        raw.Handshake(RawShipper::Hello(std::string("0123456789abcdef0123456789abcd\xff\xfe", 32))),
        0u);
    EXPECT_NE(raw.End().error_code(), grpc::StatusCode::OK);
  }
  auto recorded = standby_->inbound()->GetState(kPeerLogIdState);
  ASSERT_TRUE(recorded.ok());
  EXPECT_FALSE(recorded->has_value()) << "a refused Hello recorded its log id";
  EXPECT_EQ(standby_->inbound()->next_seq(), 1u);
  {
    // first_available_seq past next_seq is nonsense from any shipper.
    RawShipper raw(standby_->address());
    ferry::v1::ShipperFrame hello = RawShipper::Hello();
    hello.mutable_hello()->set_first_available_seq(2000);
    EXPECT_EQ(raw.Handshake(hello), 0u);
    EXPECT_EQ(raw.End().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  RawShipper good(standby_->address());
  EXPECT_EQ(good.Handshake(), 1u);
}

// A shipper whose log id changes between connections at the same epoch is another log: refused
// with both ids, nothing written; the original log goes on.
TEST_F(ReplicationStreamTest, HelloWhoseLogIdChangesBetweenConnectionsIsRefused) {
  {
    RawShipper raw(standby_->address());
    ASSERT_EQ(raw.Handshake(), 1u);
    ASSERT_TRUE(raw.Send(GoodBatch(1, 5)));
    ASSERT_EQ(raw.ReadAck(), 6u);
  }
  const std::string other = "fedcba9876543210fedcba9876543210";
  {
    RawShipper raw(standby_->address());
    EXPECT_EQ(raw.Handshake(RawShipper::Hello(other)), 0u);
    const grpc::Status status = raw.End();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(status.error_message().find(other), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find(kRawLogId), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(standby_->inbound()->GetState(kPeerLogIdState)->value_or(""), kRawLogId);
  EXPECT_EQ(standby_->inbound()->next_seq(), 6u);
  RawShipper again(standby_->address());
  EXPECT_EQ(again.Handshake(), 6u);
}

// Issue #14 item 10, the receiver's part: a new inbound log whose next record (1) the shipper
// trimmed starts right after the target's progress when that progress counts the shipper's log
// (the real target: tests/e2e/log_identity_e2e_test.cc); every other case is refused, clearly,
// and leaves the inbound log as it was.
TEST_F(ReplicationStreamTest, ANewInboundLogStartsAfterTheTargetsProgressOfTheSameLog) {
  struct Target {
    absl::Mutex mu;
    absl::StatusOr<TargetProgress> progress = absl::UnavailableError("target down");
  };
  auto target = std::make_shared<Target>();
  {
    standby_.reset();
    StandbyRegion::Options options;
    options.dir = dir_.File("fresh");
    std::filesystem::create_directories(options.dir);
    options.receiver.region = "west";
    options.receiver.token = "secret-token";
    options.receiver.target_progress = [target]() -> absl::StatusOr<TargetProgress> {
      absl::MutexLock lock(&target->mu);
      return target->progress;
    };
    auto standby = StandbyRegion::Start(options);
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = *std::move(standby);
  }
  auto set = [&](absl::StatusOr<TargetProgress> p) {
    absl::MutexLock lock(&target->mu);
    target->progress = std::move(p);
  };
  ferry::v1::ShipperFrame hello = RawShipper::Hello();
  hello.mutable_hello()->set_first_available_seq(28486);
  hello.mutable_hello()->set_next_seq(30000);
  struct Refusal {
    std::string name;
    absl::StatusOr<TargetProgress> progress;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Refusal> refusals = {
      {"target down", absl::UnavailableError("target down"), grpc::StatusCode::UNAVAILABLE,
       "cannot be read"},
      {"another log",
       TargetProgress{.log_id = "fedcba9876543210fedcba9876543210", .applied_seq = 28485},
       grpc::StatusCode::FAILED_PRECONDITION, "counts log fedcba9876543210fedcba9876543210"},
      {"unrecorded", TargetProgress{.log_id = "", .applied_seq = 28485},
       grpc::StatusCode::FAILED_PRECONDITION, "counts log unrecorded"},
      {"no progress", TargetProgress{.log_id = kRawLogId, .applied_seq = 0},
       grpc::StatusCode::FAILED_PRECONDITION, "holds no progress of log"},
      {"below the shipper's first", TargetProgress{.log_id = kRawLogId, .applied_seq = 28484},
       grpc::StatusCode::FAILED_PRECONDITION, "only up to sequence 28484"},
      {"past the shipper's end", TargetProgress{.log_id = kRawLogId, .applied_seq = 30000},
       grpc::StatusCode::FAILED_PRECONDITION, "the logs diverged"},
      {"overflow", TargetProgress{.log_id = kRawLogId, .applied_seq = UINT64_MAX},
       grpc::StatusCode::FAILED_PRECONDITION, "trimmed"},
  };
  for (const Refusal& r : refusals) {
    SCOPED_TRACE(r.name);
    set(r.progress);
    RawShipper raw(standby_->address());
    EXPECT_EQ(raw.Handshake(hello), 0u);
    const grpc::Status status = raw.End();
    EXPECT_EQ(status.error_code(), r.code) << status.error_message();
    EXPECT_NE(status.error_message().find("the shipper's log starts at sequence 28486"),
              std::string::npos)
        << status.error_message();
    EXPECT_NE(status.error_message().find(r.message), std::string::npos) << status.error_message();
    EXPECT_EQ(standby_->inbound()->next_seq(), 1u);
    EXPECT_EQ(standby_->inbound()->first_seq(), 1u);
  }
  set(TargetProgress{.log_id = kRawLogId, .applied_seq = 28485});
  RawShipper raw(standby_->address());
  ASSERT_EQ(raw.Handshake(hello), 28486u);
  EXPECT_EQ(standby_->inbound()->first_seq(), 28486u);
  EXPECT_EQ(standby_->inbound()->GetCursor(kAppliedCursor)->value_or(0), 28485u);
  ASSERT_TRUE(raw.Send(GoodBatch(28486, 4)));
  EXPECT_EQ(raw.ReadAck(), 28490u);
  // Once it holds records, the inbound log is never moved again: the normal resume rule.
  set(TargetProgress{.log_id = kRawLogId, .applied_seq = 29000});
  RawShipper next(standby_->address());
  EXPECT_EQ(next.Handshake(hello), 28490u);
}

// A ping's ack says what this stream made durable, not where the inbound log's end is now:
// another stream's handshake can move that end (a new inbound log starting at the target's
// progress) while this stream is still open, and its shipper must not see an ack past what it
// sent.
TEST_F(ReplicationStreamTest, APingIsAcknowledgedWithTheStreamsOwnEnd) {
  RawShipper raw(standby_->address());
  ASSERT_EQ(raw.Handshake(), 1u);
  ASSERT_TRUE(raw.Ping());
  EXPECT_EQ(raw.ReadAck(), 1u);
  ASSERT_TRUE(raw.Send(GoodBatch(1, 5)));
  EXPECT_EQ(raw.ReadAck(), 6u);
  ASSERT_TRUE(AppendRecords(standby_->inbound(), 3).ok());  // the log's end moves to 9
  ASSERT_EQ(standby_->inbound()->next_seq(), 9u);
  ASSERT_TRUE(raw.Ping());
  EXPECT_EQ(raw.ReadAck(), 6u);
}

}  // namespace
}  // namespace ferry::replication
