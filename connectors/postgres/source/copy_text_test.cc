#include "connectors/postgres/source/copy_text.h"

#include "gtest/gtest.h"

namespace ferry::pg {
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

}  // namespace
}  // namespace ferry::pg
