// The staged copy of a re-snapshot (staged_copy.h): what is written reads back exactly, and a
// file that is missing, cut short, altered or padded is refused before any row is used.
// Mutants this catches: no checksum check, no end frame check, no trailing-bytes check.
#include "connectors/postgres/source/staged_copy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ferry::pg {
namespace {

v1::Relation TableT() {
  v1::Relation r;
  r.set_relation_id(4242);
  r.set_schema("public");
  r.set_name("t");
  r.add_columns()->set_name("id");
  r.add_columns()->set_name("v");
  return r;
}

v1::Tuple Row(int i) {
  v1::Tuple t;
  t.add_values()->set_text(std::to_string(i));
  t.add_values()->set_text(std::string(i % 7, '\t') + "value\n" + std::to_string(i));
  return t;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A fresh directory under /tmp, removed with what it holds.
class Dir {
 public:
  Dir() {
    char tmpl[] = "/tmp/ferry-staged-XXXXXX";
    path_ = mkdtemp(tmpl) != nullptr ? tmpl : "/tmp";
  }
  ~Dir() {
    std::error_code ec;
    if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class StagedCopyTest : public ::testing::Test {
 protected:
  std::string Write(int rows) {
    const std::string path = dir_.path() + "/0123456789abcdef0123456789abcdef";
    auto w = StagedCopyWriter::Create(path, 777, TableT());
    EXPECT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < rows; ++i) EXPECT_TRUE((*w)->Add(Row(i)).ok());
    EXPECT_TRUE((*w)->Finish().ok());
    return path;
  }
  Dir dir_;
};

TEST_F(StagedCopyTest, RowsReadBackExactly) {
  const std::string path = Write(100);
  auto r = StagedCopyReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->relation().name(), "t");
  EXPECT_EQ((*r)->xid(), 777u);
  EXPECT_EQ((*r)->rows(), 100u);
  v1::Tuple t;
  for (int i = 0; i < 100; ++i) {
    auto more = (*r)->Next(&t);
    ASSERT_TRUE(more.ok() && *more) << i;
    EXPECT_EQ(t.SerializeAsString(), Row(i).SerializeAsString()) << i;
  }
  auto more = (*r)->Next(&t);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
}

TEST_F(StagedCopyTest, AnEmptyTableIsACopyWithNoRows) {
  auto r = StagedCopyReader::Open(Write(0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->rows(), 0u);
}

TEST_F(StagedCopyTest, MissingCutAlteredOrPaddedFilesAreRefused) {
  EXPECT_EQ(StagedCopyReader::Open(dir_.path() + "/none").status().code(),
            absl::StatusCode::kNotFound);
  const std::string path = Write(10);
  const std::string good = Slurp(path);
  for (size_t cut : {size_t{0}, size_t{4}, size_t{20}, good.size() / 2, good.size() - 1}) {
    Spit(path, good.substr(0, cut));
    EXPECT_EQ(StagedCopyReader::Open(path).status().code(), absl::StatusCode::kDataLoss) << cut;
  }
  for (size_t at : {size_t{3}, size_t{10}, good.size() / 2, good.size() - 2}) {
    std::string bad = good;
    bad[at] ^= 0x20;
    Spit(path, bad);
    EXPECT_EQ(StagedCopyReader::Open(path).status().code(), absl::StatusCode::kDataLoss) << at;
  }
  Spit(path, good + good.substr(8, 40));
  EXPECT_EQ(StagedCopyReader::Open(path).status().code(), absl::StatusCode::kDataLoss);
  Spit(path, good);
  EXPECT_TRUE(StagedCopyReader::Open(path).ok());
}

TEST_F(StagedCopyTest, OnlyThirtyTwoLowercaseHexDigitsAreCopyIds) {
  EXPECT_TRUE(IsValidCopyId("0123456789abcdef0123456789abcdef"));
  for (const std::string& bad : std::vector<std::string>{
           "", "0123456789ABCDEF0123456789abcdef", "../../etc/passwd", "0123456789abcdef",
           "0123456789abcdef0123456789abcdef0", "0123456789abcdef/123456789abcdef",
           std::string("0123456789abcdef0123456789abcde\0", 32)}) {
    EXPECT_FALSE(IsValidCopyId(bad)) << bad;
  }
}

}  // namespace
}  // namespace ferry::pg
