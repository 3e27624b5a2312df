#include "consistency/row_hash.h"

#include <gtest/gtest.h>

namespace ferry::consistency {
namespace {

TEST(RowHashTest, NullDiffersFromEmptyString) {
  EXPECT_NE(HashValues({std::nullopt}), HashValues({std::string()}));
  EXPECT_NE(EncodeValues({std::nullopt}), EncodeValues({std::string()}));
}

TEST(RowHashTest, DifferentTextIsDifferentHash) {
  // Decided (docs/verify.md): values compare by their exact text, so a float's -0 and 0 and a
  // numeric's 1.0 and 1.00 differ, as Postgres prints them differently.
  EXPECT_NE(HashValues({"-0"}), HashValues({"0"}));
  EXPECT_NE(HashValues({"1.0"}), HashValues({"1.00"}));
  EXPECT_EQ(HashValues({"1.0", std::nullopt}), HashValues({"1.0", std::nullopt}));
}

TEST(RowHashTest, LengthPrefixKeepsColumnBoundaries) {
  EXPECT_NE(HashValues({"ab", "c"}), HashValues({"a", "bc"}));
  EXPECT_NE(HashValues({"a", std::string()}), HashValues({"a"}));
  EXPECT_NE(HashValues({std::nullopt, std::nullopt}), HashValues({std::nullopt}));
}

TEST(RowHashTest, EncodingIsFixed) {
  // The encoding is a wire contract between two ferryd versions: pin its bytes.
  EXPECT_EQ(EncodeValues({"hi", std::nullopt}), std::string("\x01\x02\x00\x00\x00hi\x00", 8));
}

TEST(Hash128Test, AdditionCarriesAndSubtractionUndoesIt) {
  const Hash128 a{~uint64_t{0}, 1};
  const Hash128 b{2, 3};
  EXPECT_EQ(a + b, (Hash128{1, 5}));
  EXPECT_EQ((a + b) - b, a);
  EXPECT_EQ(Hash128{} - b + b, Hash128{});
  const Hash128 max{~uint64_t{0}, ~uint64_t{0}};
  EXPECT_EQ(max + (Hash128{1, 0}), Hash128{});  // modulo 2^128
}

TEST(DigestTest, DuplicatesDoNotCancel) {
  // With XOR a row present twice would vanish; the additive digest keeps it.
  const Hash128 row = HashValues({"x"});
  Digest twice, none;
  twice.Add(row);
  twice.Add(row);
  EXPECT_NE(twice, none);
  Digest once;
  once.Add(row);
  EXPECT_NE(twice, once);
  EXPECT_EQ(twice - once, once);
}

TEST(DigestTest, OrderIndependent) {
  Digest a, b;
  a.Add(HashValues({"1"}));
  a.Add(HashValues({"2"}));
  b.Add(HashValues({"2"}));
  b.Add(HashValues({"1"}));
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace ferry::consistency
