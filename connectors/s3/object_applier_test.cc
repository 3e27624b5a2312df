// ObjectApplier and CompareBuckets against radosgw: two versioned buckets stand for the two
// regions. Checked: puts, overwrites and deletes converge to equal buckets; a replayed event adds
// no version; ten overwrites cost one copy; metadata and content type kept, Ferry's marker
// ignored by equality; a single-PUT source streamed through one PUT checked by its MD5, a
// multipart source copied multipart with at most one part in memory; a copy that fails mid-way
// (a corrupted body, refused by its payload hash or Content-MD5, or a source that breaks off)
// leaves nothing visible and a retry converges; awkward keys, a 0-byte object and a 1,024-byte
// key; verify --bucket --repair's copies of a key the primary writes meanwhile.
// Mutants caught: comparing the target's ETag to a multipart source ETag (every replay copies
// again), forgetting Abort (a later complete of stale parts), writing the marker of another
// key, deleting a key the source still has.
#include "connectors/s3/object_applier.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_compare.h"
#include "connectors/s3/bucket_verify.h"
#include "connectors/s3/gateway_suite.h"
#include "connectors/s3/replica_marker.h"
#include "engine/http/http_server.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/radosgw.h"

namespace ferry::s3 {
namespace {

using ::ferry::testing::FaultProxy;

constexpr uint64_t kPart = uint64_t{5} << 20;

class ObjectApplierTest : public GatewaySuite {
 protected:
  static std::unique_ptr<S3Client> Client(const std::string& endpoint) {
    auto c =
        S3Client::Open({.endpoint = endpoint,
                        .credentials = Keys(),
                        .max_attempts = 3,
                        .backoff = {.min = absl::Milliseconds(1), .max = absl::Milliseconds(10)}});
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }
  void SetUp() override {
    ASSERT_NE(rgw_, nullptr);
    client_ = Client(rgw_->endpoint());
    static int n = 0;
    ++n;
    east_ = absl::StrCat("east-", n);
    west_ = absl::StrCat("west-", n);
    for (const std::string& b : {east_, west_}) {
      ASSERT_TRUE(client_->CreateBucket(b).ok());
      ASSERT_TRUE(client_->SetVersioning(b, true).ok());
    }
    applier_ = Applier(client_.get());
  }
  // East's bucket to west's (or `target_bucket`), read through `source` (client_ when null).
  std::unique_ptr<ObjectApplier> Applier(S3Client* target, S3Client* source = nullptr,
                                         const std::string& target_bucket = "") {
    auto a = ObjectApplier::Create({.source = source != nullptr ? source : client_.get(),
                                    .source_bucket = east_,
                                    .target = target,
                                    .target_bucket = target_bucket.empty() ? west_ : target_bucket,
                                    .origin_region = "east",
                                    .part_size = kPart});
    EXPECT_TRUE(a.ok()) << a.status();
    return std::move(*a);
  }
  void ExpectEqual() {
    auto cmp = CompareBuckets(*client_, east_, *client_, west_);
    ASSERT_TRUE(cmp.ok()) << cmp.status();
    EXPECT_TRUE(cmp->equal()) << cmp->differences << " differences, first: "
                              << (cmp->shown.empty() ? "" : cmp->shown[0]);
  }
  size_t Versions(const std::string& bucket, const std::string& key) {
    auto page = client_->ListObjectVersions(bucket, key, "", "");
    EXPECT_TRUE(page.ok()) << page.status();
    size_t n = 0;
    for (const ListedVersion& v : page->versions) n += v.key == key;
    return n;
  }
  ApplyOutcome Apply(const std::string& key) {
    auto r = applier_->ApplyKey(key);
    EXPECT_TRUE(r.ok()) << key << ": " << r.status();
    return r.ok() ? r->outcome : ApplyOutcome::kAlreadyEqual;
  }

  std::unique_ptr<S3Client> client_;
  std::unique_ptr<ObjectApplier> applier_;
  std::string east_, west_;
};

TEST_F(ObjectApplierTest, PutsOverwritesAndDeletesConverge) {
  ASSERT_TRUE(client_->PutObject(east_, "a", "one", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "b", "bee", {}).ok());
  EXPECT_EQ(Apply("a"), ApplyOutcome::kWritten);
  EXPECT_EQ(Apply("b"), ApplyOutcome::kWritten);
  ExpectEqual();
  // Ten overwrites, ten events: one copy, nine no-ops, one new version on the target.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client_->PutObject(east_, "a", absl::StrCat("v", i), {}).ok());
  }
  int written = 0;
  for (int i = 0; i < 10; ++i) written += Apply("a") == ApplyOutcome::kWritten;
  EXPECT_EQ(written, 1);
  EXPECT_EQ(Versions(west_, "a"), 2u);
  ASSERT_TRUE(client_->DeleteObject(east_, "b").ok());
  EXPECT_EQ(Apply("b"), ApplyOutcome::kDeleted);
  EXPECT_EQ(Apply("b"), ApplyOutcome::kAlreadyEqual);  // a replayed delete adds no marker
  EXPECT_EQ(Versions(west_, "b"), 2u);                 // the version and one delete marker
  ExpectEqual();
  // An event for a key that never existed anywhere changes nothing.
  EXPECT_EQ(Apply("never"), ApplyOutcome::kAlreadyEqual);
}

// verify --bucket --repair beside a primary that keeps writing: a key written during its copy is
// copied again, and one written during every one of its five copies is left to the standby's
// apply (which has the newer event), neither counted as repaired nor as a failure.
TEST_F(ObjectApplierTest, ARepairCopiesAKeyWrittenMeanwhileAgainAndLeavesOneWrittenOnAndOn) {
  ASSERT_TRUE(client_->PutObject(east_, "busy", "busy 0", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "once", "once 0", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "still", "still", {}).ok());
  std::map<std::string, int> copies;
  int cuts = 0;
  auto report = VerifyBuckets(
      {.primary = client_.get(),
       .primary_bucket = east_,
       .standby = client_.get(),
       .standby_bucket = west_,
       .primary_region = "east",
       .repair = true,
       .wait_for_cut =
           [&] {
             ++cuts;
             return absl::OkStatus();
           },
       .before_repair_copy =
           [&](const std::string& key, int attempt) {
             copies[key] = attempt;
             if (key == "busy" || (key == "once" && attempt == 1)) {
               ASSERT_TRUE(
                   client_->PutObject(east_, key, absl::StrCat(key, " ", attempt), {}).ok());
             }
           }});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->missing, 3u);
  EXPECT_EQ(report->repaired, 2u);     // "once" on its second copy, "still" on its first
  EXPECT_EQ(report->repair_left, 1u);  // "busy"
  EXPECT_EQ(report->repair_failed, 0u);
  EXPECT_EQ(copies, (std::map<std::string, int>{{"busy", 5}, {"once", 2}, {"still", 1}}));
  EXPECT_EQ(cuts, 2);  // after pass 1, and before the repaired keys are compared again
  EXPECT_TRUE(report->rechecked);
  EXPECT_EQ(report->recheck_differences, 0u);
  EXPECT_EQ(client_->GetObject(west_, "once").value_or(""), "once 1");
  EXPECT_EQ(client_->GetObject(west_, "still").value_or(""), "still");
}

TEST_F(ObjectApplierTest, ReplayAddsNoVersionAndKeepsMetadata) {
  ASSERT_TRUE(
      client_
          ->PutObject(east_, "doc", "{}",
                      {.content_type = "application/json", .metadata = {{"owner", "team a"}}})
          .ok());
  EXPECT_EQ(Apply("doc"), ApplyOutcome::kWritten);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Apply("doc"), ApplyOutcome::kAlreadyEqual);
  EXPECT_EQ(Versions(west_, "doc"), 1u);
  auto head = client_->HeadObject(west_, "doc");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->content_type, "application/json");
  EXPECT_EQ(UserMetadata(head->metadata),
            (std::map<std::string, std::string>{{"owner", "team a"}}));
  auto marker = ReadReplicaMarker(head->metadata, "doc");
  ASSERT_TRUE(marker.has_value());
  EXPECT_EQ(marker->origin_region, "east");
  EXPECT_FALSE(ReadReplicaMarker(head->metadata, "other-key").has_value());
  ExpectEqual();
  // Changing only the metadata at the source is a new state.
  ASSERT_TRUE(
      client_
          ->PutObject(east_, "doc", "{}",
                      {.content_type = "application/json", .metadata = {{"owner", "team b"}}})
          .ok());
  EXPECT_EQ(Apply("doc"), ApplyOutcome::kWritten);
  ExpectEqual();
}

TEST_F(ObjectApplierTest, AfterAReverseTheCopyIsNotCopiedBack) {
  // A multipart object (its ETag is not an MD5) copied east -> west, then the regions reverse:
  // west's copy carries the marker naming east's ETag, so applying west -> east writes nothing.
  std::string body(kPart + 1, 'r');
  ASSERT_TRUE(client_->PutObject(east_, "r", body, {}).ok());
  EXPECT_EQ(Apply("r"), ApplyOutcome::kWritten);
  auto back = ObjectApplier::Create({.source = client_.get(),
                                     .source_bucket = west_,
                                     .target = client_.get(),
                                     .target_bucket = east_,
                                     .origin_region = "west",
                                     .part_size = kPart});
  ASSERT_TRUE(back.ok());
  auto r = (*back)->ApplyKey("r");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, ApplyOutcome::kAlreadyEqual);
  EXPECT_EQ(Versions(east_, "r"), 1u);
}

// A source written by one PUT is copied with one PUT however large: its body streams from the
// GET to the PUT, checked by the target against the source's ETag, which the copy then has too.
TEST_F(ObjectApplierTest, LargeSinglePutSourcesStreamThroughOnePut) {
  std::string body(2 * kPart + 12345, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 131 % 251);
  auto put = client_->PutObject(east_, "big", body, {.content_type = "video/x-test"});
  ASSERT_TRUE(put.ok()) << put.status();
  auto r = applier_->ApplyKey("big");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, ApplyOutcome::kWritten);
  EXPECT_EQ(r->parts, 0);
  EXPECT_EQ(r->bytes, body.size());
  auto copy = client_->HeadObject(west_, "big");
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->etag, put->etag);
  EXPECT_EQ(client_->GetObject(west_, "big").value_or(""), body);
  EXPECT_EQ(Apply("big"), ApplyOutcome::kAlreadyEqual);
  ExpectEqual();
}

// A source uploaded in parts has no MD5 to check against: large, it is copied multipart, and
// small (one short part), with one PUT signed with its SHA-256.
TEST_F(ObjectApplierTest, MultipartSourcesGoMultipartOrOneSignedPut) {
  std::string body(2 * kPart + 12345, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 131 % 251);
  auto etag = PutMultipartObject(*client_, east_, "big", body, kPart, {.content_type = "video/x"});
  ASSERT_TRUE(etag.ok()) << etag.status();
  ASSERT_NE(etag->find('-'), std::string::npos) << *etag;
  auto r = applier_->ApplyKey("big");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->outcome, ApplyOutcome::kWritten);
  EXPECT_EQ(r->parts, 3);
  EXPECT_EQ(r->bytes, body.size());
  ASSERT_TRUE(PutMultipartObject(*client_, east_, "small", "one short part", kPart).ok());
  r = applier_->ApplyKey("small");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->parts, 0);
  EXPECT_EQ(Apply("big"), ApplyOutcome::kAlreadyEqual);
  EXPECT_EQ(Apply("small"), ApplyOutcome::kAlreadyEqual);
  ExpectEqual();
}

// A body flipped on its way is refused (kAborted: copy again) and leaves nothing visible, on
// each way a copy goes: a part of a multipart copy and a small PUT of a multipart source (their
// signed SHA-256; the upload is aborted), a streamed PUT and a small PUT of a single-PUT source
// (their Content-MD5). A retry then converges.
TEST_F(ObjectApplierTest, FailedCopiesLeaveNothingVisible) {
  std::string body(2 * kPart + 1, 'z');
  ASSERT_TRUE(PutMultipartObject(*client_, east_, "parts", body, kPart).ok());
  ASSERT_TRUE(
      PutMultipartObject(*client_, east_, "small part", std::string(kPart / 2, 'p'), kPart).ok());
  ASSERT_TRUE(client_->PutObject(east_, "streamed", body, {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "small", std::string(kPart / 2, 's'), {}).ok());
  auto proxy = FaultProxy::Start("127.0.0.1", rgw_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto through_proxy = Client(absl::StrCat("http://", (*proxy)->address()));
  auto failing = Applier(through_proxy.get());
  // One byte of the second part is flipped on its way: its payload hash no longer matches
  // and radosgw refuses the part (400, not retried).
  (*proxy)->CorruptBytes(1, testing::ProxyDirection::kToTarget, kPart + kPart / 2);
  auto r = failing->ApplyKey("parts");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_NE(r.status().message().find("XAmzContentSHA256Mismatch"), std::string::npos)
      << r.status();
  for (const char* key : {"small part", "streamed", "small"}) {
    (*proxy)->CorruptBytes(1, testing::ProxyDirection::kToTarget, kPart / 4);
    r = failing->ApplyKey(key);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << key << ": " << r.status();
    EXPECT_NE(r.status().message().find(
                  std::string(key) == "small part" ? "XAmzContentSHA256Mismatch" : "BadDigest"),
              std::string::npos)
        << r.status();
  }
  for (const char* key : {"parts", "small part", "streamed", "small"}) {
    EXPECT_EQ(client_->HeadObject(west_, key).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Versions(west_, key), 0u) << key;
    EXPECT_EQ(Apply(key), ApplyOutcome::kWritten) << key;
  }
  ExpectEqual();
}

// A source that breaks off in the middle of a streamed copy (its connections cut) ends the
// PUT short: nothing is stored, and the error names the GET that broke.
TEST_F(ObjectApplierTest, AStreamedCopyWhoseSourceBreaksStoresNothing) {
  std::string body(3 * kPart, 'b');
  ASSERT_TRUE(client_->PutObject(east_, "big", body, {}).ok());
  auto proxy = FaultProxy::Start("127.0.0.1", rgw_->port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto source = Client(absl::StrCat("http://", (*proxy)->address()));
  auto applier = Applier(client_.get(), source.get());
  // The GET's bytes arrive slowly enough that the cut lands in the middle of the body.
  (*proxy)->SetBandwidth(4 << 20);
  std::thread cut([&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while ((*proxy)->stats().bytes_to_client < kPart && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));  // a poll of the proxy's progress
    }
    (*proxy)->DropConnections();
  });
  auto r = applier->ApplyKey("big");
  cut.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("GET"), std::string::npos) << r.status();
  EXPECT_EQ(Versions(west_, "big"), 0u);
  (*proxy)->SetBandwidth(0);
  EXPECT_EQ(Apply("big"), ApplyOutcome::kWritten);
  ExpectEqual();
}

// A target that stores something other than what the Content-MD5 named (a stub that answers
// the PUT 200 with no ETag, as a server ignoring the header might) keeps no version of it: the
// copy deletes what it wrote and fails with kDataLoss, so no replica marker vouches for it.
TEST_F(ObjectApplierTest, ATargetThatStoresAnotherBodyKeepsNoVersionOfIt) {
  ASSERT_TRUE(client_->PutObject(east_, "k", "source body", {}).ok());
  auto stub = HttpServer::Start({.max_body_bytes = 1 << 20});
  ASSERT_TRUE(stub.ok()) << stub.status();
  absl::Mutex mu;
  std::vector<std::string> calls;
  (*stub)->Handle("/target/k", [&](const HttpRequest& request) {
    absl::MutexLock lock(&mu);
    calls.push_back(request.method);
    if (request.method == "HEAD") return HttpResponse{404, ""};
    if (request.method == "DELETE") return HttpResponse{204, ""};
    return HttpResponse{200, ""};  // a PUT stored, with no ETag
  });
  auto target = Client(absl::StrCat("http://127.0.0.1:", (*stub)->port()));
  auto r = Applier(target.get(), nullptr, "target")->ApplyKey("k");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("was removed"), std::string::npos) << r.status();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(calls, (std::vector<std::string>{"HEAD", "PUT", "DELETE"}));
}

// Only a single-PUT, unencrypted or SSE-S3 source's ETag is its body's MD5 (and is sent as the
// copy's Content-MD5); a multipart, KMS or customer-key ETag is not.
TEST(EtagIsBodyMd5Test, OnlyASinglePutUnencryptedOrSseS3Etag) {
  const std::string md5 = "5eb63bbbe01eeed093cb22bb8f5acdc3";
  EXPECT_TRUE(EtagIsBodyMd5({.etag = md5}));
  EXPECT_TRUE(EtagIsBodyMd5({.etag = md5, .encryption = "AES256"}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = md5, .encryption = "aws:kms"}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = md5, .encryption = "SSE-C"}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = md5 + "-3"}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = "5EB63BBBE01EEED093CB22BB8F5ACDC3"}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = md5.substr(1)}));
  EXPECT_FALSE(EtagIsBodyMd5({.etag = ""}));
}

TEST_F(ObjectApplierTest, AwkwardKeysEmptyObjectsAndKeysInParallel) {
  std::vector<std::string> keys = {"../up",          "a/../b",
                                   "sp ace+plus%25", "\xe6\x97\xa5\xe6\x9c\xac",
                                   "empty",          std::string(1024, 'k')};
  for (const std::string& k : keys) {
    ASSERT_TRUE(client_->PutObject(east_, k, k == "empty" ? "" : k, {}).ok()) << k;
  }
  std::vector<std::thread> threads;
  for (const std::string& k : keys) {
    threads.emplace_back([&, k] { EXPECT_EQ(Apply(k), ApplyOutcome::kWritten) << k; });
  }
  for (std::thread& t : threads) t.join();
  ExpectEqual();
  auto head = client_->HeadObject(west_, "empty");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 0u);
}

TEST_F(ObjectApplierTest, CompareBucketsReportsEachKindOfDifference) {
  ASSERT_TRUE(client_->PutObject(east_, "only-east", "x", {}).ok());
  ASSERT_TRUE(client_->PutObject(west_, "only-west", "x", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "size", "xx", {}).ok());
  ASSERT_TRUE(client_->PutObject(west_, "size", "x", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "content", "ab", {}).ok());
  ASSERT_TRUE(client_->PutObject(west_, "content", "ba", {}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "meta", "m", {.metadata = {{"k", "1"}}}).ok());
  ASSERT_TRUE(client_->PutObject(west_, "meta", "m", {.metadata = {{"k", "2"}}}).ok());
  ASSERT_TRUE(client_->PutObject(east_, "deleted", "d", {}).ok());
  ASSERT_TRUE(client_->PutObject(west_, "deleted", "d", {}).ok());
  ASSERT_TRUE(client_->DeleteObject(east_, "deleted").ok());  // a delete marker is absence
  auto cmp = CompareBuckets(*client_, east_, *client_, west_, {.max_shown = 3});
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_EQ(cmp->differences, 6u);
  EXPECT_EQ(cmp->shown.size(), 3u);
  for (const char* k : {"only-east", "only-west", "size", "content", "meta", "deleted"}) {
    EXPECT_NE(Apply(k), ApplyOutcome::kAlreadyEqual) << k;
  }
  ExpectEqual();
}

}  // namespace
}  // namespace ferry::s3
