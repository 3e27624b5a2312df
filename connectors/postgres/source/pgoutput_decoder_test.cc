#include "connectors/postgres/source/pgoutput_decoder.h"

#include "absl/strings/match.h"
#include "connectors/postgres/common/lsn.h"
#include "connectors/postgres/testing/message_bytes.h"
#include "gtest/gtest.h"

namespace ferry::pg {
namespace {

using testing::Bytes;

std::string RelationBytes() {
  return Bytes()
      .Char('R')
      .U32(16384)
      .Str("public")
      .Str("My Table")
      .Char('d')
      .U16(2)
      .U8(1)
      .Str("id")
      .U32(23)
      .U32(0xffffffff)
      .U8(0)
      .Str("note")
      .U32(25)
      .U32(0xffffffff)
      .str();
}

std::string InsertBytes() {
  return Bytes().Char('I').U32(16384).Char('N').U16(3).Text("42").Char('n').Char('u').str();
}

std::string UpdateBytes(char old_kind) {
  Bytes b;
  b.Char('U').U32(16384);
  if (old_kind != 0) b.Char(old_kind).U16(2).Text("41").Char('n');
  b.Char('N').U16(2).Text("42").Text("h\xc3\xa9llo 'x'");
  return b.str();
}

// Every kind of message the decoder knows, as the server would send it.
std::vector<std::string> AllMessages() {
  return {
      Bytes().Char('B').U64(0x1600000100).U64(1000000).U32(777).str(),
      Bytes().Char('C').U8(0).U64(0x1600000100).U64(0x1600000130).U64(1000000).str(),
      Bytes().Char('O').U64(0x99).Str("ferry_west").str(),
      RelationBytes(),
      Bytes().Char('Y').U32(90000).Str("public").Str("mood").str(),
      InsertBytes(),
      UpdateBytes(0),
      UpdateBytes('K'),
      UpdateBytes('O'),
      Bytes().Char('D').U32(16384).Char('K').U16(2).Text("42").Char('n').str(),
      Bytes().Char('T').U32(2).U8(3).U32(16384).U32(16390).str(),
      Bytes().Char('M').U8(1).U64(0x55).Str("ferry.test").U32(5).Raw("hello").str(),
  };
}

TEST(PgOutputDecoder, Begin) {
  auto m = DecodePgOutput(AllMessages()[0]);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& b = std::get<BeginMessage>(*m);
  EXPECT_EQ(b.final_lsn, 0x1600000100u);
  EXPECT_EQ(b.commit_time_us, kPostgresEpochUnixMicros + 1000000);
  EXPECT_EQ(b.xid, 777u);
}

TEST(PgOutputDecoder, Commit) {
  auto m = DecodePgOutput(AllMessages()[1]);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& c = std::get<CommitMessage>(*m);
  EXPECT_EQ(c.commit_lsn, 0x1600000100u);
  EXPECT_EQ(c.end_lsn, 0x1600000130u);
}

TEST(PgOutputDecoder, Origin) {
  auto m = DecodePgOutput(AllMessages()[2]);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<OriginMessage>(*m).name, "ferry_west");
}

TEST(PgOutputDecoder, Relation) {
  auto m = DecodePgOutput(RelationBytes());
  ASSERT_TRUE(m.ok()) << m.status();
  auto& r = std::get<RelationMessage>(*m);
  EXPECT_EQ(r.relation_id, 16384u);
  EXPECT_EQ(r.schema, "public");
  EXPECT_EQ(r.name, "My Table");
  EXPECT_EQ(r.replica_identity, 'd');
  ASSERT_EQ(r.columns.size(), 2u);
  EXPECT_TRUE(r.columns[0].part_of_key);
  EXPECT_EQ(r.columns[0].name, "id");
  EXPECT_EQ(r.columns[0].type_oid, 23u);
  EXPECT_EQ(r.columns[0].type_modifier, -1);
  EXPECT_FALSE(r.columns[1].part_of_key);
}

TEST(PgOutputDecoder, Type) {
  auto m = DecodePgOutput(AllMessages()[4]);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<TypeMessage>(*m).name, "mood");
}

TEST(PgOutputDecoder, InsertKeepsNullUnchangedToastAndText) {
  auto m = DecodePgOutput(InsertBytes());
  ASSERT_TRUE(m.ok()) << m.status();
  auto& i = std::get<InsertMessage>(*m);
  ASSERT_EQ(i.new_tuple.values_size(), 3);
  EXPECT_EQ(i.new_tuple.values(0).text(), "42");
  EXPECT_TRUE(i.new_tuple.values(1).null());
  EXPECT_TRUE(i.new_tuple.values(2).unchanged_toast());
}

TEST(PgOutputDecoder, UpdateWithoutWithKeyAndWithOldRow) {
  for (char kind : {'\0', 'K', 'O'}) {
    auto m = DecodePgOutput(UpdateBytes(kind));
    ASSERT_TRUE(m.ok()) << m.status();
    auto& u = std::get<UpdateMessage>(*m);
    EXPECT_EQ(u.old_kind, kind);
    EXPECT_EQ(u.old_tuple.values_size(), kind == 0 ? 0 : 2);
    EXPECT_EQ(u.new_tuple.values(1).text(), "h\xc3\xa9llo 'x'");
  }
}

TEST(PgOutputDecoder, Delete) {
  auto m = DecodePgOutput(AllMessages()[9]);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& d = std::get<DeleteMessage>(*m);
  EXPECT_EQ(d.old_kind, 'K');
  EXPECT_EQ(d.old_tuple.values(0).text(), "42");
}

TEST(PgOutputDecoder, Truncate) {
  auto m = DecodePgOutput(AllMessages()[10]);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& t = std::get<TruncateMessage>(*m);
  EXPECT_EQ(t.relation_ids, (std::vector<uint32_t>{16384, 16390}));
  EXPECT_TRUE(t.cascade);
  EXPECT_TRUE(t.restart_identity);
}

TEST(PgOutputDecoder, Message) {
  auto m = DecodePgOutput(AllMessages()[11]);
  ASSERT_TRUE(m.ok()) << m.status();
  auto& l = std::get<LogicalMessage>(*m);
  EXPECT_TRUE(l.transactional);
  EXPECT_EQ(l.prefix, "ferry.test");
  EXPECT_EQ(l.content, "hello");
}

TEST(PgOutputDecoder, EveryTruncationIsDataLossNamingTypeAndOffset) {
  for (const std::string& full : AllMessages()) {
    ASSERT_TRUE(DecodePgOutput(full).ok()) << full[0];
    for (size_t len = 0; len < full.size(); ++len) {
      auto m = DecodePgOutput(absl::string_view(full).substr(0, len));
      ASSERT_FALSE(m.ok()) << "message '" << full[0] << "' truncated to " << len;
      EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
      EXPECT_TRUE(absl::StrContains(m.status().message(), "offset")) << m.status();
      if (len > 0) {
        EXPECT_TRUE(absl::StrContains(m.status().message(), PgOutputMessageName(full[0])))
            << m.status();
      }
    }
  }
}

TEST(PgOutputDecoder, TrailingBytesAreDataLoss) {
  for (const std::string& full : AllMessages()) {
    auto m = DecodePgOutput(full + "x");
    EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << full[0];
    EXPECT_TRUE(absl::StrContains(m.status().message(), "trailing")) << m.status();
  }
}

TEST(PgOutputDecoder, UnknownMessageType) {
  auto m = DecodePgOutput("Zabc");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "unknown message type 0x5a"));
  EXPECT_EQ(DecodePgOutput("").status().code(), absl::StatusCode::kDataLoss);
}

TEST(PgOutputDecoder, UnknownTupleKind) {
  auto m = DecodePgOutput(Bytes().Char('I').U32(1).Char('N').U16(1).Char('x').str());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "unknown tuple value kind 0x78"))
      << m.status();
  EXPECT_TRUE(absl::StrContains(m.status().message(), "offset 8")) << m.status();
}

TEST(PgOutputDecoder, AbsurdLengthsAreRefusedWithoutAllocating) {
  // A value length of 2 GiB - 1 in a 20-byte message.
  auto big =
      DecodePgOutput(Bytes().Char('I').U32(1).Char('N').U16(1).Char('t').U32(0x7fffffff).str());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(big.status().message(), "truncated")) << big.status();
  // A negative length.
  auto negative =
      DecodePgOutput(Bytes().Char('I').U32(1).Char('N').U16(1).Char('t').U32(0xffffffff).str());
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(negative.status().message(), "negative")) << negative.status();
  // 65535 columns.
  auto columns = DecodePgOutput(Bytes().Char('I').U32(1).Char('N').U16(0xffff).str());
  EXPECT_EQ(columns.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(columns.status().message(), "exceeds")) << columns.status();
  // A truncate of 4 billion relations.
  auto truncate = DecodePgOutput(Bytes().Char('T').U32(0xfffffff0).U8(0).str());
  EXPECT_EQ(truncate.status().code(), absl::StatusCode::kDataLoss);
  // A message content longer than the buffer.
  auto message = DecodePgOutput(Bytes().Char('M').U8(1).U64(1).Str("p").U32(1000).Raw("ab").str());
  EXPECT_EQ(message.status().code(), absl::StatusCode::kDataLoss);
  // An oversized message.
  DecodeLimits limits;
  limits.max_message_bytes = 8;
  auto oversized = DecodePgOutput(InsertBytes(), limits);
  EXPECT_EQ(oversized.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(oversized.status().message(), "oversized pgoutput Insert"))
      << oversized.status();
}

TEST(PgOutputDecoder, BadMarkersAndIdentity) {
  EXPECT_EQ(DecodePgOutput(Bytes().Char('I').U32(1).Char('X').U16(0).str()).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodePgOutput(Bytes().Char('D').U32(1).Char('N').U16(0).str()).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodePgOutput(Bytes().Char('R').U32(1).Str("s").Str("t").Char('z').U16(0).str())
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  // Commit whose end precedes its start.
  EXPECT_EQ(DecodePgOutput(Bytes().Char('C').U8(0).U64(100).U64(50).U64(0).str()).status().code(),
            absl::StatusCode::kDataLoss);
}

// Cheap fuzzing: every single-byte corruption of every message either decodes or is a
// kDataLoss, never anything else (and never a crash under the sanitizers).
TEST(PgOutputDecoder, SingleByteCorruptionNeverCrashes) {
  for (const std::string& full : AllMessages()) {
    for (size_t i = 0; i < full.size(); ++i) {
      for (int v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
        std::string bad = full;
        bad[i] = static_cast<char>(v);
        auto m = DecodePgOutput(bad);
        if (!m.ok()) {
          EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
        }
      }
    }
  }
}

}  // namespace
}  // namespace ferry::pg
