// S3Client against radosgw, a server that checks SigV4 signatures: keys with every awkward
// byte, a wrong secret (403, not retried), versions and delete markers, metadata, multipart
// (complete and abort), and retries: SlowDown/503 from a stub, resets and a partition through
// the fault proxy.
//
// Mutants these catch: encoding '+' or '=' in a key differently in the URL and the signature
// (403), dropping '=' from "?versioning=" (403), not sending x-amz-content-sha256 (403),
// curl normalising "../" out of a key (wrong key stored), retrying a 403, not retrying a 503,
// reading the ETag with its quotes.
#include "connectors/s3/s3_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/s3/gateway_suite.h"
#include "engine/http/http_server.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/radosgw.h"

namespace ferry::s3 {
namespace {

using ::ferry::testing::FaultProxy;

class S3ClientTest : public GatewaySuite {
 protected:
  void SetUp() override {
    ASSERT_NE(rgw_, nullptr);
    client_ = Client(rgw_->endpoint());
    ASSERT_NE(client_, nullptr);
  }
  static std::unique_ptr<S3Client> Client(const std::string& endpoint,
                                          const std::string& secret = "", int attempts = 5) {
    auto c =
        S3Client::Open({.endpoint = endpoint,
                        .credentials = Keys(secret),
                        .stall_timeout = absl::Seconds(1),
                        .max_attempts = attempts,
                        .backoff = {.min = absl::Milliseconds(1), .max = absl::Milliseconds(10)}});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // A fresh bucket for the test, versioned or not.
  std::string Bucket(bool versioned) {
    static int n = 0;
    std::string bucket = absl::StrCat("test-bucket-", ++n);
    EXPECT_TRUE(client_->CreateBucket(bucket).ok());
    if (versioned) {
      EXPECT_TRUE(client_->SetVersioning(bucket, true).ok());
    }
    return bucket;
  }

  std::unique_ptr<S3Client> client_;
};

TEST_F(S3ClientTest, AwkwardKeysRoundTripExactly) {
  const std::string bucket = Bucket(false);
  std::vector<std::string> keys = {"a b",
                                   "plus+sign",
                                   "percent%41%",
                                   "eq=ual&amp",
                                   "dir/sub/file.txt",
                                   "unicod\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac",
                                   "../escape",
                                   "a/../b",
                                   "./dot",
                                   "a//b",
                                   "trailing/",
                                   "~tilde;semi:colon,comma",
                                   "q?mark#hash",
                                   "quote\"apos'<lt>",
                                   "tab\there",
                                   "*star!()$@[]{}|^`\\",
                                   std::string(1024, 'k')};
  for (const std::string& key : keys) {
    const std::string body = "body of " + key;
    auto put = client_->PutObject(bucket, key, body, {});
    ASSERT_TRUE(put.ok()) << key << ": " << put.status();
    EXPECT_FALSE(put->etag.empty());
    EXPECT_EQ(put->etag.find('"'), std::string::npos) << put->etag;
    auto head = client_->HeadObject(bucket, key);
    ASSERT_TRUE(head.ok()) << key << ": " << head.status();
    EXPECT_EQ(head->size, body.size());
    EXPECT_EQ(head->etag, put->etag);
    auto got = client_->GetObject(bucket, key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_EQ(*got, body);
  }
  std::set<std::string> listed;
  std::string token;
  do {
    auto page = client_->ListObjectsV2(bucket, "", token, 5);  // several pages
    ASSERT_TRUE(page.ok()) << page.status();
    for (const ListedObject& o : page->objects) listed.insert(o.key);
    token = page->next_continuation_token;
  } while (!token.empty());
  EXPECT_EQ(listed, std::set<std::string>(keys.begin(), keys.end()));
  for (const std::string& key : keys) {
    ASSERT_TRUE(client_->DeleteObject(bucket, key).ok()) << key;
    EXPECT_EQ(client_->HeadObject(bucket, key).status().code(), absl::StatusCode::kNotFound);
  }
}

TEST_F(S3ClientTest, KeysS3CannotHoldAreRefusedBeforeSending) {
  const std::string bucket = Bucket(false);
  uint64_t before = client_->requests_sent();
  EXPECT_EQ(client_->PutObject(bucket, "", "x", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->PutObject(bucket, std::string(1025, 'k'), "x", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      client_->PutObject(bucket, "k", "x", {.metadata = {{"a", "b\r\nX-Evil: 1"}}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->requests_sent(), before);
}

TEST_F(S3ClientTest, WrongSecretIsPermissionDeniedAndNotRetried) {
  const std::string bucket = Bucket(false);
  auto bad = Client(rgw_->endpoint(), "not-the-secret");
  auto put = bad->PutObject(bucket, "k", "x", {});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kPermissionDenied) << put.status();
  EXPECT_NE(put.status().message().find("SignatureDoesNotMatch"), std::string::npos)
      << put.status();
  EXPECT_EQ(bad->requests_sent(), 1u);
  EXPECT_EQ(bad->HeadObject(bucket, "k").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(bad->ListObjectsV2(bucket, "", "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(S3ClientTest, ZeroByteObject) {
  const std::string bucket = Bucket(false);
  auto put = client_->PutObject(bucket, "empty", "", {});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->etag, "d41d8cd98f00b204e9800998ecf8427e");  // MD5 of nothing
  auto head = client_->HeadObject(bucket, "empty");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 0u);
  auto got = client_->GetObject(bucket, "empty");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "");
}

// A PUT sent with Content-MD5 and an unsigned payload (how Ferry copies a single-PUT source),
// whole or streamed from a producer: stored when the body matches, refused with kAborted
// (BadDigest) and nothing stored when it does not.
TEST_F(S3ClientTest, UnsignedPutsAreCheckedByTheirContentMd5) {
  const std::string bucket = Bucket(true);
  const std::string md5_hello = "5eb63bbbe01eeed093cb22bb8f5acdc3";  // of "hello world"
  auto put = client_->PutObject(bucket, "hello", "hello world", {.content_md5 = md5_hello});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->etag, md5_hello);
  auto bad = client_->PutObject(bucket, "bad", "hello worle", {.content_md5 = md5_hello});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kAborted) << bad.status();
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "BadDigest")) << bad.status();
  EXPECT_EQ(client_->HeadObject(bucket, "bad").status().code(), absl::StatusCode::kNotFound);

  std::string body(3 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 31 % 253);
  auto whole = client_->PutObject(bucket, "whole", body, {});
  ASSERT_TRUE(whole.ok()) << whole.status();  // its ETag is the body's MD5
  auto stream = [&](std::string_view from) {
    return [from, at = size_t{0}](char* buffer, size_t capacity) mutable -> absl::StatusOr<size_t> {
      const size_t n = std::min({capacity, from.size() - at, size_t{70000}});
      std::memcpy(buffer, from.data() + at, n);
      at += n;
      return n;
    };
  };
  auto streamed = client_->PutObjectStreamed(bucket, "streamed", body.size(),
                                             {.content_md5 = whole->etag}, stream(body));
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->etag, whole->etag);
  EXPECT_EQ(client_->GetObject(bucket, "streamed").value_or(""), body);
  std::string changed = body;
  changed[body.size() / 2] ^= 1;
  auto refused = client_->PutObjectStreamed(bucket, "refused", body.size(),
                                            {.content_md5 = whole->etag}, stream(changed));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted) << refused.status();
  EXPECT_EQ(client_->HeadObject(bucket, "refused").status().code(), absl::StatusCode::kNotFound);
}

// A producer that fails, or whose body ends before the size announced, aborts the PUT with its
// error, once (its bytes cannot be asked for again), and nothing is stored. Content MD5s that
// are not 32 hex digits, a streamed PUT without one, and one on a multipart upload are refused
// before anything is sent.
TEST_F(S3ClientTest, StreamedPutsEndOnTheirProducersErrorAndBadMd5sAreRefused) {
  const std::string bucket = Bucket(true);
  const std::string md5 = "5eb63bbbe01eeed093cb22bb8f5acdc3";
  uint64_t sent = client_->requests_sent();
  auto failing = client_->PutObjectStreamed(
      bucket, "failing", 1 << 20, {.content_md5 = md5},
      [calls = 0](char* buffer, size_t capacity) mutable -> absl::StatusOr<size_t> {
        if (++calls > 3) return absl::UnavailableError("the source went away");
        std::memset(buffer, 'f', capacity);
        return std::min<size_t>(capacity, 1000);
      });
  EXPECT_EQ(failing.status().code(), absl::StatusCode::kUnavailable) << failing.status();
  EXPECT_TRUE(absl::StrContains(failing.status().message(), "the source went away"));
  EXPECT_EQ(client_->requests_sent(), sent + 1);
  auto short_body = client_->PutObjectStreamed(
      bucket, "short", 1 << 20, {.content_md5 = md5},
      [given = false](char* buffer, size_t) mutable -> absl::StatusOr<size_t> {
        if (given) return 0;
        given = true;
        buffer[0] = 's';
        return 1;
      });
  EXPECT_EQ(short_body.status().code(), absl::StatusCode::kAborted) << short_body.status();
  EXPECT_TRUE(absl::StrContains(short_body.status().message(), "ended after 1 of 1048576"))
      << short_body.status();
  for (const char* key : {"failing", "short"}) {
    EXPECT_EQ(client_->HeadObject(bucket, key).status().code(), absl::StatusCode::kNotFound);
  }

  sent = client_->requests_sent();
  for (std::string hostile :
       {std::string("xyz"), md5.substr(1), md5 + "0",
        std::string("5eb63bbbe01eeed093cb22bb8f5acdcg"), md5.substr(0, 31) + "\n"}) {
    auto r = client_->PutObject(bucket, "k", "hello world", {.content_md5 = hostile});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << hostile;
  }
  auto unhashed = client_->PutObjectStreamed(
      bucket, "k", 1, {}, [](char*, size_t) -> absl::StatusOr<size_t> { return 1; });
  EXPECT_EQ(unhashed.status().code(), absl::StatusCode::kInvalidArgument);
  auto multipart = client_->CreateMultipartUpload(bucket, "k", {.content_md5 = md5});
  EXPECT_EQ(multipart.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->requests_sent(), sent);
}

TEST_F(S3ClientTest, MetadataAndContentTypeAreKept) {
  const std::string bucket = Bucket(false);
  auto put = client_->PutObject(
      bucket, "doc", "{}",
      {.content_type = "application/json", .metadata = {{"Owner", "team a"}, {"x", "1"}}});
  ASSERT_TRUE(put.ok()) << put.status();
  auto head = client_->HeadObject(bucket, "doc");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->content_type, "application/json");
  EXPECT_EQ(head->metadata, (std::map<std::string, std::string>{{"owner", "team a"}, {"x", "1"}}));
}

TEST_F(S3ClientTest, VersionsAndDeleteMarkers) {
  const std::string bucket = Bucket(true);
  auto v = client_->GetVersioning(bucket);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "Enabled");
  auto v1 = client_->PutObject(bucket, "k", "one", {});
  auto v2 = client_->PutObject(bucket, "k", "two", {});
  ASSERT_TRUE(v1.ok() && v2.ok());
  EXPECT_FALSE(v1->version_id.empty());
  EXPECT_NE(v1->version_id, v2->version_id);
  auto del = client_->DeleteObject(bucket, "k");
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_TRUE(del->delete_marker);
  EXPECT_EQ(client_->HeadObject(bucket, "k").status().code(), absl::StatusCode::kNotFound);
  auto old = client_->GetObject(bucket, "k", v1->version_id);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(*old, "one");
  auto page = client_->ListObjectVersions(bucket, "", "", "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->versions.size(), 3u);
  int markers = 0, latest = 0;
  for (const ListedVersion& lv : page->versions) {
    EXPECT_EQ(lv.key, "k");
    markers += lv.delete_marker;
    latest += lv.is_latest;
    if (lv.is_latest) {
      EXPECT_TRUE(lv.delete_marker);
    }
  }
  EXPECT_EQ(markers, 1);
  EXPECT_EQ(latest, 1);
  // Removing the marker makes "two" current again.
  ASSERT_TRUE(client_->DeleteObject(bucket, "k", del->version_id).ok());
  auto now = client_->GetObject(bucket, "k");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(*now, "two");
}

TEST_F(S3ClientTest, MultipartCompletesAndAbortLeavesNothing) {
  const std::string bucket = Bucket(true);
  const std::string part1(5 << 20, 'a');  // S3's smallest part but the last
  const std::string part2 = "tail";
  auto id = client_->CreateMultipartUpload(bucket, "big key+", {.content_type = "text/x-big"});
  ASSERT_TRUE(id.ok()) << id.status();
  auto e1 = client_->UploadPart(bucket, "big key+", *id, 1, part1);
  auto e2 = client_->UploadPart(bucket, "big key+", *id, 2, part2);
  ASSERT_TRUE(e1.ok() && e2.ok()) << e1.status() << e2.status();
  EXPECT_EQ(client_->HeadObject(bucket, "big key+").status().code(),
            absl::StatusCode::kNotFound);  // nothing visible before Complete
  auto done = client_->CompleteMultipartUpload(bucket, "big key+", *id, {{1, *e1}, {2, *e2}});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(absl::EndsWith(done->etag, "-2")) << done->etag << " " << done->version_id;
  auto head = client_->HeadObject(bucket, "big key+");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, part1.size() + part2.size());
  EXPECT_EQ(head->content_type, "text/x-big");
  uint64_t streamed = 0;
  int chunks = 0;
  auto info = client_->GetObjectStreamed(bucket, "big key+", "", [&](std::string_view chunk) {
    streamed += chunk.size();
    ++chunks;
    return absl::OkStatus();
  });
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(streamed, head->size);
  EXPECT_GT(chunks, 1);

  auto id2 = client_->CreateMultipartUpload(bucket, "aborted", {});
  ASSERT_TRUE(id2.ok());
  ASSERT_TRUE(client_->UploadPart(bucket, "aborted", *id2, 1, part1).ok());
  ASSERT_TRUE(client_->AbortMultipartUpload(bucket, "aborted", *id2).ok());
  EXPECT_EQ(client_->HeadObject(bucket, "aborted").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->UploadPart(bucket, "aborted", *id2, 2, "x").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(S3ClientTest, SlowDownAndServiceUnavailableAreRetried) {
  std::atomic<int> calls{0};
  auto stub = HttpServer::Start({});
  ASSERT_TRUE(stub.ok()) << stub.status();
  (*stub)->Handle("/bucket/key", [&](const HttpRequest&) {
    int n = ++calls;
    if (n == 1) {
      return HttpResponse{503, "<Error><Code>SlowDown</Code></Error>", "application/xml"};
    }
    if (n == 2) return HttpResponse{500, "<Error><Code>InternalError</Code></Error>"};
    return HttpResponse{200, "ok"};
  });
  auto c = Client(absl::StrCat("http://127.0.0.1:", (*stub)->port()));
  auto got = c->GetObject("bucket", "key");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "ok");
  EXPECT_EQ(calls.load(), 3);

  calls = 0;
  (*stub)->Handle("/bucket/key", [&](const HttpRequest&) {
    ++calls;
    return HttpResponse{503, "<Error><Code>SlowDown</Code></Error>"};
  });
  auto limited = Client(absl::StrCat("http://127.0.0.1:", (*stub)->port()), "", 3);
  auto failed = limited->GetObject("bucket", "key");
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  EXPECT_NE(failed.status().message().find("SlowDown"), std::string::npos) << failed.status();
  EXPECT_EQ(calls.load(), 3);
}

TEST_F(S3ClientTest, ResetConnectionsAndPartitionsThroughTheFaultProxy) {
  const std::string bucket = Bucket(false);
  auto proxy = FaultProxy::Start("127.0.0.1", rgw_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto c = Client(absl::StrCat("http://", (*proxy)->address()));
  ASSERT_TRUE(c->PutObject(bucket, "k", std::string(16 << 20, 'x'), {}).ok());
  // The kept-alive connection is reset between calls: the next call still succeeds.
  (*proxy)->DropConnections();
  auto head = c->HeadObject(bucket, "k");
  ASSERT_TRUE(head.ok()) << head.status();
  // Reset in the middle of a streamed body: the bytes already delivered cannot be taken back,
  // so the call fails kUnavailable (the caller restarts it) rather than retrying silently.
  bool dropped = false;
  auto streamed = c->GetObjectStreamed(bucket, "k", "", [&](std::string_view) {
    if (!dropped) (*proxy)->DropConnections();
    dropped = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(streamed.status().code(), absl::StatusCode::kUnavailable) << streamed.status();
  auto again = c->GetObject(bucket, "k");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->size(), size_t{16} << 20);
  // A partition: every attempt stalls (1 s each here) and the call ends kUnavailable.
  (*proxy)->SetBlackhole(true);
  auto limited = Client(absl::StrCat("http://", (*proxy)->address()), "", 2);
  EXPECT_EQ(limited->HeadObject(bucket, "k").status().code(), absl::StatusCode::kUnavailable);
  (*proxy)->SetBlackhole(false);
  EXPECT_TRUE(limited->HeadObject(bucket, "k").ok());
}

// Cancel() from another thread ends a call stalled on a partition well before its stall
// timeout and retries would (here 30 s a try, 5 tries), with kCancelled; later calls fail at once.
TEST_F(S3ClientTest, CancelEndsAStalledCallAndEveryLaterOne) {
  const std::string bucket = Bucket(false);
  ASSERT_TRUE(client_->PutObject(bucket, "k", "v", {}).ok());
  auto proxy = FaultProxy::Start("127.0.0.1", rgw_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto c = S3Client::Open({.endpoint = absl::StrCat("http://", (*proxy)->address()),
                           .credentials = Keys(),
                           .stall_timeout = absl::Seconds(30)});
  ASSERT_TRUE(c.ok()) << c.status();
  (*proxy)->SetBlackhole(true);
  absl::Status stalled;
  absl::Time ended;
  std::thread call([&] {
    stalled = (*c)->HeadObject(bucket, "k").status();
    ended = absl::Now();
  });
  // The call is in flight once the proxy holds its connection.
  const absl::Time wait_until = absl::Now() + absl::Seconds(10);
  while ((*proxy)->stats().connections_accepted == 0 && absl::Now() < wait_until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const absl::Time cancelled = absl::Now();
  (*c)->Cancel();
  call.join();
  EXPECT_EQ(stalled.code(), absl::StatusCode::kCancelled) << stalled;
  EXPECT_LT(ended - cancelled, absl::Seconds(5));
  (*proxy)->SetBlackhole(false);
  EXPECT_EQ((*c)->HeadObject(bucket, "k").status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace ferry::s3
