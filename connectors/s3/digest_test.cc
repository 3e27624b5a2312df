// Digest against published values: MD5 and SHA-256 of "" and of "hello world" (the same in one
// piece or in several updates), as raw bytes and as lowercase hex.
#include "connectors/s3/digest.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "connectors/s3/sigv4.h"

namespace ferry::s3 {
namespace {

TEST(DigestTest, Md5AndSha256MatchPublishedValuesWholeOrInPieces) {
  Digest empty(Digest::kMd5);
  EXPECT_EQ(empty.HexFinish(), "d41d8cd98f00b204e9800998ecf8427e");
  Digest md5(Digest::kMd5);
  md5.Update("hello ");
  md5.Update("");
  md5.Update("world");
  EXPECT_EQ(md5.HexFinish(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
  Digest sha(Digest::kSha256);
  sha.Update("hello world");
  const std::string raw = sha.Finish();
  EXPECT_EQ(raw.size(), 32u);
  EXPECT_EQ(absl::BytesToHexString(raw),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  EXPECT_EQ(absl::BytesToHexString(raw), Sha256Hex("hello world"));
}

}  // namespace
}  // namespace ferry::s3
