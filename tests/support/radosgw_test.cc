// The radosgw fixture comes up, answers S3 requests, and checks signatures. Its start is
// measured by radosgw_start_test (RadosGatewayStart.Repeated) so that a fixture that fails to
// start now and then is seen as such, not as a flaky test elsewhere.
#include "tests/support/radosgw.h"

#include <gtest/gtest.h>

#include "tests/support/http_get.h"

namespace ferry::testing {
namespace {

TEST(RadosGatewayTest, StartsAndAnswersAnonymousListing) {
  auto rgw = RadosGateway::Start();
  ASSERT_TRUE(rgw.ok()) << rgw.status();
  auto r = HttpGet((*rgw)->endpoint() + "/");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("ListAllMyBucketsResult"), std::string::npos) << r->body;
  auto user = (*rgw)->Admin({"user", "info", "--uid=ferry"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_NE(user->find((*rgw)->access_key()), std::string::npos);
}

TEST(RadosGatewayTest, TwoGatewaysStartSideBySide) {
  auto a = RadosGateway::Start();
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = RadosGateway::Start();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->port(), (*b)->port());
  auto ra = HttpGet((*a)->endpoint() + "/");
  auto rb = HttpGet((*b)->endpoint() + "/");
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->status, 200);
  EXPECT_EQ(rb->status, 200);
}

TEST(RadosGatewayTest, StopsItsDaemonsOnDestruction) {
  int port = 0;
  {
    auto rgw = RadosGateway::Start();
    ASSERT_TRUE(rgw.ok()) << rgw.status();
    port = (*rgw)->port();
  }
  auto r = HttpGet("http://127.0.0.1:" + std::to_string(port) + "/");
  EXPECT_FALSE(r.ok()) << "the gateway still answers after the fixture was destroyed";
}

}  // namespace
}  // namespace ferry::testing
