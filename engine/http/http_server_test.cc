// HttpServer over real loopback HTTP (libcurl as the client): exact paths reach their handler,
// anything else is a 404, the bound port is reported, and a taken port or a malformed address
// is refused with a clear error.
#include "engine/http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "tests/support/http_get.h"

namespace ferry {
namespace {

using ::ferry::testing::HttpGet;
using ::ferry::testing::HttpPost;

TEST(HttpServerTest, ServesExactPathsAndAnswers404Otherwise) {
  auto server = HttpServer::Start({.listen_address = "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  std::atomic<int> calls{0};
  (*server)->Handle("/healthz", [&](const HttpRequest& r) {
    ++calls;
    return HttpResponse{200, absl::StrCat("ok ", r.method, " ", r.query, "\n")};
  });
  (*server)->Handle("/primary", [](const HttpRequest&) { return HttpResponse{503, "standby\n"}; });
  const std::string base = absl::StrCat("http://127.0.0.1:", (*server)->port());
  auto ok = HttpGet(base + "/healthz?x=1");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "ok GET x=1\n");
  auto unavailable = HttpGet(base + "/primary");
  ASSERT_TRUE(unavailable.ok());
  EXPECT_EQ(unavailable->status, 503);
  EXPECT_EQ(unavailable->body, "standby\n");
  for (const char* path : {"/", "/healthz/extra", "/HEALTHZ", "/../etc/passwd"}) {
    auto missing = HttpGet(base + path);
    ASSERT_TRUE(missing.ok()) << path;
    EXPECT_EQ(missing->status, 404) << path;
    EXPECT_EQ(missing->body, "not found\n") << path;  // Ferry's answer, not civetweb's page
  }
  EXPECT_EQ(calls.load(), 1);
  (*server)->Stop();
  EXPECT_FALSE(HttpGet(base + "/healthz").ok());  // no longer listening
}

TEST(HttpServerTest, TakenPortAndMalformedAddressAreRefused) {
  auto first = HttpServer::Start({.listen_address = "127.0.0.1:0"});
  ASSERT_TRUE(first.ok());
  auto second = HttpServer::Start({.listen_address = absl::StrCat("127.0.0.1:", (*first)->port())});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
  for (const char* bad : {"", "localhost", "127.0.0.1:"}) {
    auto refused = HttpServer::Start({.listen_address = bad});
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// A webhook's needs: any path, the body (bounded: 413 above the bound, the handler not called),
// and the headers.
TEST(HttpServerTest, ReadsBoundedBodiesAndHeadersAndServesOtherPaths) {
  auto server = HttpServer::Start({.listen_address = "127.0.0.1:0", .max_body_bytes = 100});
  ASSERT_TRUE(server.ok()) << server.status();
  std::atomic<int> calls{0};
  (*server)->HandleOthers([&](const HttpRequest& r) {
    ++calls;
    auto auth = r.headers.find("authorization");
    return HttpResponse{200, absl::StrCat(r.method, " ", r.path, " ", r.body, " ",
                                          auth == r.headers.end() ? "-" : auth->second)};
  });
  const std::string base = absl::StrCat("http://127.0.0.1:", (*server)->port());
  auto ok = HttpPost(base + "/any/path", "hello", {"Authorization: Bearer t"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "POST /any/path hello Bearer t");
  auto big = HttpPost(base + "/x", std::string(101, 'b'));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(calls.load(), 1);
  auto exact = HttpPost(base + "/x", std::string(100, 'b'));
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->status, 200);
}

}  // namespace
}  // namespace ferry
