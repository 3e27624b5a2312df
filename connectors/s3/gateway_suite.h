// GatewaySuite: the base of the S3 connector's integration test fixtures. One throwaway radosgw
// (tests/support/radosgw.h: a real S3 server that checks signatures) is shared by a suite's
// tests, started once in SetUpTestSuite (each test makes its own buckets); Credentials() are its
// user's keys. PutMultipartObject writes a source object the way a large upload does, with a
// multipart ETag ("<md5 of the parts' MD5s>-<parts>"). Test-only (header-only; the tests link
// ferry::s3 and ferry::testing).
//
// Example:
//   class MyTest : public GatewaySuite {};
//   TEST_F(MyTest, X) {
//     auto c = S3Client::Open({.endpoint = rgw_->endpoint(), .credentials = Keys()});
//   }
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "connectors/s3/s3_client.h"
#include "engine/base/status_macros.h"
#include "tests/support/radosgw.h"

namespace ferry::s3 {

class GatewaySuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto rgw = testing::RadosGateway::Start();
    ASSERT_TRUE(rgw.ok()) << rgw.status();
    rgw_ = rgw->release();
  }
  static void TearDownTestSuite() {
    delete rgw_;
    rgw_ = nullptr;
  }
  // The gateway user's keys (`secret` replaces the secret key when not empty).
  static Credentials Keys(const std::string& secret = "") {
    return {.access_key = rgw_->access_key(),
            .secret_key = secret.empty() ? rgw_->secret_key() : secret};
  }

  inline static testing::RadosGateway* rgw_ = nullptr;
};

// Uploads `body` in parts of `part_size` bytes (the last may be shorter); returns the ETag.
inline absl::StatusOr<std::string> PutMultipartObject(S3Client& client, const std::string& bucket,
                                                      const std::string& key, std::string_view body,
                                                      size_t part_size,
                                                      const PutOptions& options = {}) {
  FERRY_ASSIGN_OR_RETURN(std::string upload, client.CreateMultipartUpload(bucket, key, options));
  std::vector<CompletedPart> parts;
  for (size_t at = 0; at < body.size() || parts.empty(); at += part_size) {
    const int number = static_cast<int>(parts.size()) + 1;
    FERRY_ASSIGN_OR_RETURN(
        std::string etag,
        client.UploadPart(bucket, key, upload, number,
                          body.substr(at, std::min(part_size, body.size() - at))));
    parts.push_back({number, std::move(etag)});
  }
  FERRY_ASSIGN_OR_RETURN(PutResult done,
                         client.CompleteMultipartUpload(bucket, key, upload, parts));
  return done.etag;
}

}  // namespace ferry::s3
