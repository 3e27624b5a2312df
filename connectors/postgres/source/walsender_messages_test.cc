#include "connectors/postgres/source/walsender_messages.h"

#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/testing/message_bytes.h"
#include "gtest/gtest.h"

namespace ferry::pg {
namespace {

using testing::Bytes;

TEST(WalSenderMessages, XLogData) {
  auto m = DecodeWalSenderMessage(Bytes().Char('w').U64(10).U64(20).U64(30).Raw("Bxyz").str());
  ASSERT_TRUE(m.ok()) << m.status();
  auto& x = std::get<XLogData>(*m);
  EXPECT_EQ(x.start_lsn, 10u);
  EXPECT_EQ(x.wal_end, 20u);
  EXPECT_EQ(x.send_time_us, kPostgresEpochUnixMicros + 30);
  EXPECT_EQ(x.payload, "Bxyz");
}

TEST(WalSenderMessages, Keepalive) {
  auto m = DecodeWalSenderMessage(Bytes().Char('k').U64(0x123).U64(0).U8(1).str());
  ASSERT_TRUE(m.ok()) << m.status();
  auto& k = std::get<PrimaryKeepalive>(*m);
  EXPECT_EQ(k.wal_end, 0x123u);
  EXPECT_TRUE(k.reply_requested);
}

TEST(WalSenderMessages, MalformedIsDataLoss) {
  for (std::string bad : {std::string(), std::string("w1234"), std::string("k12"),
                          Bytes().Char('k').U64(1).U64(2).U8(0).U8(0).str(), std::string("q")}) {
    EXPECT_EQ(DecodeWalSenderMessage(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

TEST(WalSenderMessages, StandbyStatusUpdateLayout) {
  std::string m =
      EncodeStandbyStatusUpdate(0x200, 0x100, 0x100, kPostgresEpochUnixMicros + 5, true);
  EXPECT_EQ(m, Bytes().Char('r').U64(0x200).U64(0x100).U64(0x100).U64(5).U8(1).str());
}

}  // namespace
}  // namespace ferry::pg
