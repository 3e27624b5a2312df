// SIGKILL in the middle of a copy, against radosgw: of a multipart source's multipart copy (kill
// point s3.part_uploaded, after the 2nd of 3 parts), and of a single-PUT source's streamed PUT
// (s3.put_half_streamed, half its body sent). The target shows no object and no version (a
// multipart upload is invisible until completed, a PUT cut short stores nothing); the next
// apply aborts the dead copy's upload, copies again and the buckets end equal, with no upload
// left in progress.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "connectors/s3/bucket_compare.h"
#include "connectors/s3/gateway_suite.h"
#include "connectors/s3/s3_client.h"
#include "tests/support/child_process.h"
#include "tests/support/radosgw.h"
#include "tests/support/temp_dir.h"

namespace ferry::s3 {
namespace {

using ::ferry::testing::BuiltBinary;
using ::ferry::testing::ChildProcess;
using ::ferry::testing::RadosGateway;
using ::ferry::testing::SpawnOptions;
using ::ferry::testing::TempDir;

constexpr uint64_t kPart = uint64_t{5} << 20;

// Kills object_apply_helper copying "big object" from east to west at `kill_point`, checks
// that west shows nothing and holds `uploads_left` multipart uploads in progress, then lets a
// new helper copy it and checks that the buckets are equal with no upload left.
void KillMidCopyThenConverge(bool multipart_source, const std::string& kill_point,
                             size_t uploads_left) {
  auto rgw = RadosGateway::Start();
  ASSERT_TRUE(rgw.ok()) << rgw.status();
  auto client = S3Client::Open(
      {.endpoint = (*rgw)->endpoint(),
       .credentials = {.access_key = (*rgw)->access_key(), .secret_key = (*rgw)->secret_key()}});
  ASSERT_TRUE(client.ok());
  S3Client& s3 = **client;
  for (const char* b : {"east", "west"}) {
    ASSERT_TRUE(s3.CreateBucket(b).ok());
    ASSERT_TRUE(s3.SetVersioning(b, true).ok());
  }
  std::string body(2 * kPart + 777, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  if (multipart_source) {
    ASSERT_TRUE(
        PutMultipartObject(s3, "east", "big object", body, kPart, {.content_type = "x/y"}).ok());
  } else {
    ASSERT_TRUE(s3.PutObject("east", "big object", body, {.content_type = "x/y"}).ok());
  }

  TempDir dir("ferry-object-crash");
  auto run = [&](const std::string& point) {
    SpawnOptions spawn{.argv = {BuiltBinary("object_apply_helper"), (*rgw)->endpoint(), "east",
                                "west", "big object", absl::StrCat(kPart)},
                       .output_path = dir.File("helper.log"),
                       .extra_env = {"FERRY_S3_ACCESS_KEY=" + (*rgw)->access_key(),
                                     "FERRY_S3_SECRET_KEY=" + (*rgw)->secret_key()},
                       .kill_with_parent = true};
    if (!point.empty()) spawn.extra_env.push_back("FERRY_KILL_POINT=" + point);
    auto child = ChildProcess::Spawn(spawn);
    EXPECT_TRUE(child.ok()) << child.status();
    return child.ok() ? (*child)->Wait() : -1;
  };
  int status = run(kill_point);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  EXPECT_EQ(s3.HeadObject("west", "big object").status().code(), absl::StatusCode::kNotFound);
  auto versions = s3.ListObjectVersions("west", "", "", "");
  ASSERT_TRUE(versions.ok());
  EXPECT_TRUE(versions->versions.empty());
  auto uploads = s3.ListMultipartUploads("west", "big object");
  ASSERT_TRUE(uploads.ok()) << uploads.status();
  EXPECT_EQ(uploads->size(), uploads_left);  // a dead multipart copy's, invisible

  status = run("");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto cmp = CompareBuckets(s3, "east", s3, "west");
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_TRUE(cmp->equal()) << cmp->shown[0];
  uploads = s3.ListMultipartUploads("west", "big object");
  ASSERT_TRUE(uploads.ok());
  EXPECT_TRUE(uploads->empty());
}

TEST(ObjectApplyCrashTest, SigkillDuringAMultipartCopyLeavesNothingVisibleAndConverges) {
  KillMidCopyThenConverge(/*multipart_source=*/true, "s3.part_uploaded@2", 1);
}

TEST(ObjectApplyCrashTest, SigkillDuringAStreamedPutLeavesNothingVisibleAndConverges) {
  KillMidCopyThenConverge(/*multipart_source=*/false, "s3.put_half_streamed@1", 0);
}

}  // namespace
}  // namespace ferry::s3
