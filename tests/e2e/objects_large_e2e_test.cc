// Large objects end to end (bucket-only regions, a real radosgw), one of each kind Ferry copies
// differently: a 200 MiB + 1 byte object written on east in the application's own part size
// (16 MiB) reaches west as a streamed multipart copy in Ferry's (5 MiB here), and one as large
// written with one PUT reaches west as one PUT streamed from the GET (its ETag, the body's MD5,
// is the source's). The peak resident memory of west's ferryd (VmHWM, the kernel's high-water
// mark) stays far below the object's size after both: bodies are streamed, never held whole.
// The content is checked by `ferryctl verify --bucket` (SHA-256 of both bodies, streamed). The
// 5 GB case is bench/objects/large_object_bench (not run in CI).
// Mutants: a copy that reads the body whole (peak RSS above 200 MiB), a single PUT of a
// multipart source (west's ETag would not be a multipart one), a multipart copy of a single-PUT
// source (west's ETag would be).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"

namespace ferry::testing {
namespace {

constexpr char kEast[] = "east-assets";
constexpr char kWest[] = "west-assets";
constexpr uint64_t kSize = (uint64_t{200} << 20) + 1;
constexpr uint64_t kAppPart = uint64_t{16} << 20;
// Far below the object's size; ferryd's own baseline (RocksDB, gRPC, curl) is a few tens of MiB.
constexpr uint64_t kMaxPeakRss = uint64_t{120} << 20;

// A process's peak resident set (VmHWM), in bytes; 0 when unreadable.
uint64_t PeakRss(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      uint64_t kb = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      if (absl::SimpleAtoi(digits, &kb)) return kb << 10;
    }
  }
  return 0;
}

// West's copy of `key`, once it has one (NotFound after two minutes).
absl::StatusOr<s3::ObjectInfo> WaitForCopy(s3::S3Client& s3, const std::string& key) {
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  absl::StatusOr<s3::ObjectInfo> copied = absl::NotFoundError("not yet");
  while (absl::Now() < deadline) {
    copied = s3.HeadObject(kWest, key);
    if (copied.ok()) break;
    absl::SleepFor(absl::Milliseconds(200));  // polling west's bucket, not synchronisation
  }
  return copied;
}

TEST(ObjectsLargeE2eTest, A200MiBObjectOfEachKindIsCopiedWithBoundedMemory) {
  auto buckets = BucketPair::Start();
  ASSERT_TRUE(buckets.ok()) << buckets.status();
  s3::S3Client& s3 = (*buckets)->s3();
  auto regions = TwoRegions::Start((*buckets)->RegionOptions(/*without_postgres=*/true));
  ASSERT_TRUE(regions.ok()) << regions.status();
  TwoRegions& r = **regions;
  ASSERT_TRUE((*buckets)->PushTo(Region::kEast).ok());
  const uint64_t baseline = PeakRss(r.pid(Region::kWest));
  ASSERT_GT(baseline, 0u);

  // The application's multipart upload, one 16 MiB part in this process's memory at a time.
  auto id = s3.CreateMultipartUpload(kEast, "large/video.bin", {.content_type = "video/mp4"});
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<s3::CompletedPart> parts;
  for (uint64_t off = 0, n = 1; off < kSize; off += kAppPart, ++n) {
    std::string part(std::min(kAppPart, kSize - off), '\0');
    for (size_t i = 0; i < part.size(); i += 4096) part[i] = static_cast<char>((off + i) >> 12);
    auto etag = s3.UploadPart(kEast, "large/video.bin", *id, static_cast<int>(n), part);
    ASSERT_TRUE(etag.ok()) << etag.status();
    parts.push_back({static_cast<int>(n), *etag});
  }
  ASSERT_TRUE(s3.CompleteMultipartUpload(kEast, "large/video.bin", *id, parts).ok());

  absl::StatusOr<s3::ObjectInfo> copied = WaitForCopy(s3, "large/video.bin");
  ASSERT_TRUE(copied.ok()) << copied.status() << r.LogTail(Region::kWest);
  EXPECT_EQ(copied->size, kSize);
  // A multipart ETag ("MD5-PARTS"): 41 parts of 5 MiB, never one PUT.
  EXPECT_NE(copied->etag.find("-41"), std::string::npos) << copied->etag;

  // The application's single PUT (the whole body in this process's memory, not ferryd's).
  absl::StatusOr<s3::PutResult> one_put;
  {
    std::string body(kSize, '\0');
    for (size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>(i >> 13);
    one_put = s3.PutObject(kEast, "large/one-put.bin", body, {.content_type = "video/mp4"});
  }
  ASSERT_TRUE(one_put.ok()) << one_put.status();
  copied = WaitForCopy(s3, "large/one-put.bin");
  ASSERT_TRUE(copied.ok()) << copied.status() << r.LogTail(Region::kWest);
  EXPECT_EQ(copied->size, kSize);
  EXPECT_EQ(copied->etag, one_put->etag);  // the body's MD5: one PUT, checked by it

  const uint64_t peak = PeakRss(r.pid(Region::kWest));
  EXPECT_LT(peak, kMaxPeakRss) << "west's ferryd peaked at " << (peak >> 20) << " MiB (baseline "
                               << (baseline >> 20) << " MiB) copying two " << (kSize >> 20)
                               << " MiB objects";
  std::printf("west ferryd peak RSS: %llu MiB (baseline %llu MiB) for two %llu MiB objects\n",
              static_cast<unsigned long long>(peak >> 20),
              static_cast<unsigned long long>(baseline >> 20),
              static_cast<unsigned long long>(kSize >> 20));

  auto verified = r.Ctl(Region::kEast, {"verify", "--bucket", "--timeout", "120"});
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->exit_code, 0) << verified->output;
}

}  // namespace
}  // namespace ferry::testing
