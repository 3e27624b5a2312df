// GatewaySuite: the base of the S3 connector's integration test fixtures. One throwaway radosgw
// (tests/support/radosgw.h: a real S3 server that checks signatures) is shared by a suite's
// tests, started once in SetUpTestSuite (each test makes its own buckets); Credentials() are its
// user's keys. Test-only (header-only; the tests link ferry::s3 and ferry::testing).
//
// Example:
//   class MyTest : public GatewaySuite {};
//   TEST_F(MyTest, X) {
//     auto c = S3Client::Open({.endpoint = rgw_->endpoint(), .credentials = Keys()});
//   }
#pragma once

#include <gtest/gtest.h>

#include "connectors/s3/s3_client.h"
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

}  // namespace ferry::s3
