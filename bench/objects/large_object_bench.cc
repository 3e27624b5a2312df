// large_object_bench: one large object (5 GiB by default) copied by Ferry's apply step
// (ObjectApplier::ApplyKey: HEAD both sides, a GET streamed into a multipart upload, one part in
// memory) from one bucket into another on a throwaway radosgw, with the copy's time and this
// process's peak resident memory during the copy (VmHWM, reset before it through
// /proc/self/clear_refs). The object is uploaded first in the application's own part size,
// generated part by part. Not run in CI: radosgw keeps both copies in RAM (memstore), so the
// machine needs about 2.5 times the object's size free. On a shared machine the time is
// measured under contention: only the memory bound is a result.
//
// Usage: large_object_bench [--size BYTES] [--app-part BYTES] [--part BYTES]
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connectors/s3/object_applier.h"
#include "connectors/s3/s3_client.h"
#include "tests/support/radosgw.h"

namespace {

using ferry::s3::S3Client;

struct Args {
  uint64_t size = uint64_t{5} << 30;
  uint64_t app_part = uint64_t{64} << 20;
  uint64_t part = uint64_t{8} << 20;  // Ferry's objects.part_size default
};

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    uint64_t v = 0;
    if (!absl::SimpleAtoi(argv[i + 1], &v) || v == 0) return false;
    if (k == "--size") {
      a->size = v;
    } else if (k == "--app-part") {
      a->app_part = v;
    } else if (k == "--part") {
      a->part = v;
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && a->app_part >= (uint64_t{5} << 20) && a->part >= (uint64_t{5} << 20);
}

uint64_t StatusKb(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) {
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      uint64_t kb = 0;
      if (absl::SimpleAtoi(digits, &kb)) return kb;
    }
  }
  return 0;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "large_object_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, &args)) {
    return Fail(
        "usage: large_object_bench [--size BYTES] [--app-part BYTES>=5MiB] [--part BYTES>=5MiB]");
  }
  auto rgw = ferry::testing::RadosGateway::Start(
      {.memstore_bytes = args.size * 5 / 2 + (uint64_t{1} << 30)});
  if (!rgw.ok()) return Fail(rgw.status().ToString());
  auto client = S3Client::Open(
      {.endpoint = (*rgw)->endpoint(),
       .credentials = {.access_key = (*rgw)->access_key(), .secret_key = (*rgw)->secret_key()}});
  if (!client.ok()) return Fail(client.status().ToString());
  S3Client& s3 = **client;
  for (const char* b : {"source", "target"}) {
    if (absl::Status s = s3.CreateBucket(b); !s.ok()) return Fail(s.ToString());
  }
  const std::string key = "large object";
  auto id = s3.CreateMultipartUpload("source", key, {.content_type = "application/octet-stream"});
  if (!id.ok()) return Fail(id.status().ToString());
  std::vector<ferry::s3::CompletedPart> parts;
  for (uint64_t off = 0, n = 1; off < args.size; off += args.app_part, ++n) {
    std::string part(std::min(args.app_part, args.size - off), '\0');
    for (size_t i = 0; i < part.size(); i += 4096) part[i] = static_cast<char>((off + i) >> 12);
    auto etag = s3.UploadPart("source", key, *id, static_cast<int>(n), part);
    if (!etag.ok()) return Fail(etag.status().ToString());
    parts.push_back({static_cast<int>(n), *etag});
  }
  if (auto done = s3.CompleteMultipartUpload("source", key, *id, parts); !done.ok()) {
    return Fail(done.status().ToString());
  }

  auto applier = ferry::s3::ObjectApplier::Create({.source = &s3,
                                                   .source_bucket = "source",
                                                   .target = &s3,
                                                   .target_bucket = "target",
                                                   .origin_region = "east",
                                                   .part_size = args.part});
  if (!applier.ok()) return Fail(applier.status().ToString());
  std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
  const uint64_t before_kb = StatusKb("VmHWM:");
  const absl::Time start = absl::Now();
  auto applied = (*applier)->ApplyKey(key);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const uint64_t peak_kb = StatusKb("VmHWM:");
  if (!applied.ok()) return Fail(applied.status().ToString());
  auto head = s3.HeadObject("target", key);
  if (!head.ok() || head->size != args.size) return Fail("the copy has the wrong size");
  std::printf(
      "object %llu MiB in %d parts of %llu MiB: %.1f s, %.1f MiB/s; peak RSS %llu MiB "
      "(%llu MiB before the copy)\n",
      static_cast<unsigned long long>(args.size >> 20), applied->parts,
      static_cast<unsigned long long>(args.part >> 20), seconds,
      static_cast<double>(args.size >> 20) / seconds,
      static_cast<unsigned long long>(peak_kb >> 10),
      static_cast<unsigned long long>(before_kb >> 10));
  return 0;
}
