#include "engine/rows/copy_rows.h"

#include <xxhash.h>
#include <zstd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

TEST(CopyText, ValuesNullsAndEscapes) {
  v1::Tuple t;
  ASSERT_TRUE(ParseCopyTextRow("1\t\\N\ta\\tb\\nc\\\\d\t\\x41\\101\\q\t\t\\\\N\n", 6, &t).ok());
  ASSERT_EQ(t.values_size(), 6);
  EXPECT_EQ(t.values(0).text(), "1");
  EXPECT_TRUE(t.values(1).null());
  EXPECT_EQ(t.values(2).text(), "a\tb\nc\\d");
  EXPECT_EQ(t.values(3).text(), "AAq");
  EXPECT_EQ(t.values(4).text(), "");
  EXPECT_EQ(t.values(5).text(), "\\N");  // the text "\N", not NULL
}

TEST(CopyText, WrongColumnCountIsDataLoss) {
  v1::Tuple t;
  EXPECT_EQ(ParseCopyTextRow("1\t2\n", 3, &t).code(), absl::StatusCode::kDataLoss);
  v1::Tuple u;
  EXPECT_EQ(ParseCopyTextRow("1\\", 1, &u).code(), absl::StatusCode::kDataLoss);
}

TEST(CopyText, ZeroColumnsAndOneEmpty) {
  v1::Tuple t;
  EXPECT_TRUE(ParseCopyTextRow("\n", 0, &t).ok());
  EXPECT_EQ(t.values_size(), 0);
  v1::Tuple u;
  EXPECT_TRUE(ParseCopyTextRow("\n", 1, &u).ok());
  EXPECT_EQ(u.values(0).text(), "");
}

v1::Relation TwoColumns() {
  v1::Relation r;
  r.set_relation_id(7);
  r.set_schema("public");
  r.set_name("t");
  r.add_columns()->set_name("id");
  r.add_columns()->set_name("v");
  return r;
}

v1::Change Copy(std::string rows, uint32_t count) {
  v1::Change c;
  c.set_op(v1::COPY);
  c.set_relation_id(7);
  c.set_copy_rows(std::move(rows));
  c.set_copy_row_count(count);
  return c;
}

TEST(CopyRows, WellFormedRowsPassAndExpandToInserts) {
  const v1::Change c = Copy("1\ta\n2\t\\N\n3\tx\\ty\n", 3);
  EXPECT_EQ(CopyRowsProblem(TwoColumns(), c, 100), std::nullopt);
  std::vector<v1::Change> out;
  ASSERT_TRUE(ExpandCopyRows(c, 2, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].op(), v1::INSERT);
  EXPECT_EQ(out[0].relation_id(), 7u);
  EXPECT_TRUE(out[1].new_tuple().values(1).null());
  EXPECT_EQ(out[2].new_tuple().values(1).text(), "x\ty");
  // No rows at all is a valid (empty) change.
  EXPECT_EQ(CopyRowsProblem(TwoColumns(), Copy("", 0), 100), std::nullopt);
}

// Rows from the peer are input from outside: each malformed or hostile form is named, and apply
// refuses the change whole (the sink stops the table) instead of handing it to COPY FROM.
TEST(CopyRows, MalformedOrHostileRowsAreRefused) {
  const v1::Relation rel = TwoColumns();
  auto problem = [&](std::string rows, uint32_t count, size_t max = 100) {
    return CopyRowsProblem(rel, Copy(std::move(rows), count), max).value_or("");
  };
  EXPECT_THAT(problem("1\ta\n2\tb", 2), ::testing::HasSubstr("do not end with a newline"));
  EXPECT_THAT(problem("1\ta\n", 2), ::testing::HasSubstr("1 COPY rows, but the change says 2"));
  EXPECT_THAT(problem("1\ta\n", 0), ::testing::HasSubstr("says 0"));
  EXPECT_THAT(problem("1\ta\tb\n", 1), ::testing::HasSubstr("has 3 values"));
  EXPECT_THAT(problem("1\n", 1), ::testing::HasSubstr("has 1 values"));
  EXPECT_THAT(problem("\\.\n1\ta\n", 2), ::testing::HasSubstr("end-of-data marker"));
  EXPECT_THAT(problem("1\tfoo\\.\n", 1), ::testing::HasSubstr("end-of-data marker"));
  EXPECT_THAT(problem("1\ta\r\n", 1), ::testing::HasSubstr("carriage return"));
  EXPECT_EQ(problem("1\tfoo\\\\.\\r\n", 1), "");  // an escaped backslash, then a dot; \r
  EXPECT_THAT(problem("1\ta\\\n", 1), ::testing::HasSubstr("ends inside an escape"));
  EXPECT_THAT(problem(std::string("1\ta\0b\n", 6), 1), ::testing::HasSubstr("NUL byte"));
  EXPECT_THAT(problem("1\ta\\000b\n", 1), ::testing::HasSubstr("NUL byte"));
  EXPECT_THAT(problem("1\ta\\x00\n", 1), ::testing::HasSubstr("NUL byte"));
  EXPECT_THAT(problem("1\t" + std::string(101, 'v') + "\n", 1),
              ::testing::HasSubstr("over apply.max_value_bytes"));
  // The limit is on the value, not on its escaped form: 100 escaped bytes are 100 bytes.
  std::string escaped;
  for (int i = 0; i < 100; ++i) escaped += "\\101";
  EXPECT_EQ(problem("1\t" + escaped + "\n", 1), "");
  // Plain rows (no escape, NUL or carriage return, shorter than the limit) are counted by their
  // tabs; the same verdicts as the byte-by-byte walk, at and around the limits.
  EXPECT_EQ(problem("\t\n", 1), "");  // two empty values
  EXPECT_THAT(problem("\t\t\n", 1), ::testing::HasSubstr("has 3 values"));
  EXPECT_THAT(problem("\n", 1), ::testing::HasSubstr("has 1 values"));
  EXPECT_EQ(problem("1\t" + std::string(98, 'v') + "\n", 1), "");   // the row is 100 bytes
  EXPECT_EQ(problem("1\t" + std::string(100, 'v') + "\n", 1), "");  // the value is 100 bytes
  // 100 bytes with a third (empty) value: the plain path counts it.
  EXPECT_THAT(problem("1\t" + std::string(97, 'v') + "\t\n", 1), ::testing::HasSubstr("has 3"));
  // 101 bytes: past the plain path's size, the walk says the same.
  EXPECT_THAT(problem("1\t" + std::string(98, 'v') + "\t\n", 1), ::testing::HasSubstr("has 3"));
  std::vector<v1::Change> out;
  EXPECT_EQ(ExpandCopyRows(Copy("1\ta\n", 2), 2, &out).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ExpandCopyRows(Copy("1\n", 1), 2, &out).code(), absl::StatusCode::kDataLoss);
}

TEST(CopyRows, ATransactionsCopyChangesAreExpandedInPlace) {
  v1::Transaction txn;
  *txn.add_relations() = TwoColumns();
  v1::Change* truncate = txn.add_changes();
  truncate->set_op(v1::TRUNCATE);
  truncate->set_relation_id(7);
  *txn.add_changes() = Copy("1\ta\n2\tb\n", 2);
  ASSERT_TRUE(ExpandCopyChanges(&txn).ok());
  ASSERT_EQ(txn.changes_size(), 3);
  EXPECT_EQ(txn.changes(0).op(), v1::TRUNCATE);
  EXPECT_EQ(txn.changes(2).new_tuple().values(1).text(), "b");
  v1::Transaction stray;
  *stray.add_changes() = Copy("1\ta\n", 1);
  EXPECT_EQ(ExpandCopyChanges(&stray).code(), absl::StatusCode::kDataLoss);
}

// Rows of TwoColumns' shape: a key and blank-padded text, as pgbench's accounts.
std::string PaddedRows(int n) {
  std::string rows;
  for (int i = 1; i <= n; ++i) absl::StrAppend(&rows, i, "\t", i % 7, std::string(84, ' '), "\n");
  return rows;
}

TEST(CopyRowsCompression, CompressedRowsInflateToWhatWasCompressed) {
  const std::string rows = PaddedRows(1000);
  v1::Transaction txn;
  *txn.add_relations() = TwoColumns();
  v1::Change* copy = txn.add_changes();
  *copy = Copy(rows, 1000);
  ASSERT_TRUE(CompressCopyRows(copy, 1).ok());
  EXPECT_TRUE(copy->copy_rows().empty());
  EXPECT_LT(copy->copy_rows_zstd().size(), rows.size() / 8);
  EXPECT_EQ(copy->copy_row_count(), 1000u);
  absl::StatusOr<size_t> inflated = InflateCopyRows(&txn);
  ASSERT_TRUE(inflated.ok()) << inflated.status();
  EXPECT_EQ(*inflated, rows.size());
  EXPECT_EQ(txn.changes(0).copy_rows(), rows);
  EXPECT_TRUE(txn.changes(0).copy_rows_zstd().empty());
  // Expanding inflates first: a reader that takes rows one by one never sees the frame.
  ASSERT_TRUE(CompressCopyRows(txn.mutable_changes(0), 3).ok());
  ASSERT_TRUE(ExpandCopyChanges(&txn).ok());
  ASSERT_EQ(txn.changes_size(), 1000);
  EXPECT_EQ(txn.changes(999).new_tuple().values(0).text(), "1000");
}

TEST(CopyRowsCompression, RowsThatDoNotShrinkByAnEighthTravelAsTheyAre) {
  v1::Change small = Copy("1\ta\n", 1);
  ASSERT_TRUE(CompressCopyRows(&small, 1).ok());
  EXPECT_EQ(small.copy_rows(), "1\ta\n");
  EXPECT_TRUE(small.copy_rows_zstd().empty());
  v1::Change none = Copy("", 0);
  ASSERT_TRUE(CompressCopyRows(&none, 1).ok());
  EXPECT_TRUE(none.copy_rows_zstd().empty());
  // Nine parts noise to one part blanks: zstd saves something, but less than an eighth.
  std::mt19937 random(7);
  std::string rows;
  for (int i = 0; i < 9000; ++i) rows.push_back(static_cast<char>(random() & 0xff));
  rows.append(1000, ' ');
  std::string compressed(ZSTD_compressBound(rows.size()), '\0');
  const size_t n = ZSTD_compress(compressed.data(), compressed.size(), rows.data(), rows.size(), 1);
  ASSERT_FALSE(ZSTD_isError(n));
  ASSERT_LT(n, rows.size());
  ASSERT_GT(n, rows.size() - rows.size() / 8);
  v1::Change noisy = Copy(rows, 1);
  ASSERT_TRUE(CompressCopyRows(&noisy, 1).ok());
  EXPECT_EQ(noisy.copy_rows(), rows);
  EXPECT_TRUE(noisy.copy_rows_zstd().empty());
}

// A zstd frame made by hand (RFC 8878, 3.1.1): the magic number, a descriptor for a single
// segment whose content size takes 8 bytes, with a content checksum or not, that size, one last
// raw block holding `content`, and the checksum (XXH64's low 32 bits).
std::string RawFrame(uint64_t declared_size, const std::string& content, bool checksum = true) {
  std::string f = "\x28\xb5\x2f\xfd";
  f.push_back(checksum ? '\xe4' : '\xe0');
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<char>(declared_size >> (8 * i)));
  const uint32_t block = 1u | (static_cast<uint32_t>(content.size()) << 3);  // last, raw
  for (int i = 0; i < 3; ++i) f.push_back(static_cast<char>(block >> (8 * i)));
  f += content;
  const uint64_t sum = XXH64(content.data(), content.size(), 0);
  for (int i = 0; checksum && i < 4; ++i) f.push_back(static_cast<char>(sum >> (8 * i)));
  return f;
}

TEST(CopyRowsCompression, DamagedOrHostileFramesAreDataLossNotAllocations) {
  auto inflate = [](v1::Change change) {
    v1::Transaction txn;
    *txn.add_relations() = TwoColumns();
    *txn.add_changes() = std::move(change);
    absl::Status s = InflateCopyRows(&txn).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    return std::string(s.message());
  };
  auto with_frame = [](std::string frame) {
    v1::Change c = Copy("", 2);
    c.set_copy_rows_zstd(std::move(frame));
    return c;
  };
  // The frame built by hand is one zstd reads (so the cases below test what they say).
  {
    v1::Transaction txn;
    *txn.add_changes() = with_frame(RawFrame(4, "1\ta\n"));
    ASSERT_TRUE(InflateCopyRows(&txn).ok());
    EXPECT_EQ(txn.changes(0).copy_rows(), "1\ta\n");
  }
  v1::Change good = Copy(PaddedRows(100), 100);
  ASSERT_TRUE(CompressCopyRows(&good, 1).ok());
  ASSERT_FALSE(good.copy_rows_zstd().empty());
  v1::Change both = good;
  both.set_copy_rows("1\ta\n");
  EXPECT_THAT(inflate(both), ::testing::HasSubstr("both compressed and not"));
  v1::Change insert = good;
  insert.set_op(v1::INSERT);
  EXPECT_THAT(inflate(insert), ::testing::HasSubstr("operation 1 carries compressed COPY rows"));
  // A skippable frame (magic 0x184D2A50, a length, then bytes zstd passes over) inflates to
  // nothing: it is not rows.
  EXPECT_THAT(inflate(with_frame(std::string("\x50\x2a\x4d\x18\x04\0\0\0abcd", 12))),
              ::testing::HasSubstr("not a zstd frame"));
  EXPECT_THAT(inflate(with_frame("not a zstd frame at all")),
              ::testing::HasSubstr("not a zstd frame that records its size and checksum"));
  EXPECT_THAT(inflate(with_frame(RawFrame(4, "1\ta\n", /*checksum=*/false))),
              ::testing::HasSubstr("records its size and checksum"));
  EXPECT_THAT(inflate(with_frame(RawFrame(4, "1\tb\n").replace(13 + 3, 4, "1\ta\n"))),
              ::testing::HasSubstr("do not inflate"));  // the rows differ from their checksum
  // A frame that claims a terabyte is refused before anything is allocated.
  EXPECT_THAT(inflate(with_frame(RawFrame(uint64_t{1} << 40, "1\ta\n"))),
              ::testing::HasSubstr("would inflate to 1099511627776 bytes"));
  EXPECT_THAT(inflate(with_frame(RawFrame(kMaxInflatedCopyRowsBytes + 1, "1\ta\n"))),
              ::testing::HasSubstr("would inflate"));
  // Content longer or shorter than the frame declares.
  EXPECT_THAT(inflate(with_frame(RawFrame(2, "1\ta\n"))), ::testing::HasSubstr("do not inflate"));
  EXPECT_THAT(inflate(with_frame(RawFrame(9, "1\ta\n"))), ::testing::HasSubstr("do not inflate"));
  // Cut short, or one byte of the compressed rows flipped.
  v1::Change cut = good;
  cut.mutable_copy_rows_zstd()->resize(cut.copy_rows_zstd().size() - 3);
  EXPECT_THAT(inflate(cut), ::testing::HasSubstr("do not inflate"));
  for (size_t at = 20; at < good.copy_rows_zstd().size(); at += 7) {
    v1::Change flipped = good;
    (*flipped.mutable_copy_rows_zstd())[at] ^= 0x10;
    inflate(flipped);  // kDataLoss whatever the byte: the frame carries the rows' checksum
  }
  // A frame without its size (streamed compression may leave it out).
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ASSERT_EQ(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)), 0u);
  ASSERT_EQ(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)), 0u);
  const std::string rows = PaddedRows(10);
  std::string sizeless(ZSTD_compressBound(rows.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, sizeless.data(), sizeless.size(), rows.data(), rows.size());
  ZSTD_freeCCtx(cctx);
  ASSERT_FALSE(ZSTD_isError(n));
  sizeless.resize(n);
  EXPECT_THAT(inflate(with_frame(sizeless)),
              ::testing::HasSubstr("not a zstd frame that records its size and checksum"));
}

// The bound is the record's, not each frame's: frames that each stay under it cannot add up
// past it.
TEST(CopyRowsCompression, ARecordsFramesTogetherInflateToTheBoundAtMost) {
  const size_t each = kMaxInflatedCopyRowsBytes / 2 + 1;
  v1::Change half = Copy(std::string(each, '\n'), static_cast<uint32_t>(each));
  ASSERT_TRUE(CompressCopyRows(&half, 1).ok());
  ASSERT_FALSE(half.copy_rows_zstd().empty());
  v1::Transaction one;
  *one.add_changes() = half;
  absl::StatusOr<size_t> inflated = InflateCopyRows(&one);
  ASSERT_TRUE(inflated.ok()) << inflated.status();
  EXPECT_EQ(*inflated, each);
  v1::Transaction two;
  *two.add_changes() = half;
  *two.add_changes() = half;
  absl::Status s = InflateCopyRows(&two).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("past the 67108864 a record's rows may take"));
  // Rows past the bound are never compressed: the log that captures them refuses them.
  v1::Change over = Copy(std::string(kMaxInflatedCopyRowsBytes + 1, '\n'), 1);
  ASSERT_TRUE(CompressCopyRows(&over, 1).ok());
  EXPECT_TRUE(over.copy_rows_zstd().empty());
  EXPECT_EQ(over.copy_rows().size(), kMaxInflatedCopyRowsBytes + 1);
}

}  // namespace
}  // namespace ferry
