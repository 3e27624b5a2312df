// The program object_apply_crash_test kills: applies one key from one bucket to another with
// ObjectApplier (the standby's apply step), so that FERRY_KILL_POINT=s3.part_uploaded@N stops
// it with SIGKILL in the middle of a multipart copy.
//
// Usage: object_apply_helper ENDPOINT SOURCE_BUCKET TARGET_BUCKET KEY PART_SIZE
// Keys from FERRY_S3_ACCESS_KEY / FERRY_S3_SECRET_KEY. Exit 0 when applied, 1 otherwise.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "connectors/s3/object_applier.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s ENDPOINT SOURCE TARGET KEY PART_SIZE\n", argv[0]);
    return 1;
  }
  const char* access = std::getenv("FERRY_S3_ACCESS_KEY");
  const char* secret = std::getenv("FERRY_S3_SECRET_KEY");
  uint64_t part_size = 0;
  if (access == nullptr || secret == nullptr || !absl::SimpleAtoi(argv[5], &part_size)) {
    std::fprintf(stderr, "set FERRY_S3_ACCESS_KEY, FERRY_S3_SECRET_KEY; PART_SIZE a number\n");
    return 1;
  }
  auto client = ferry::s3::S3Client::Open(
      {.endpoint = argv[1], .credentials = {.access_key = access, .secret_key = secret}});
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  auto applier = ferry::s3::ObjectApplier::Create({.source = client->get(),
                                                   .source_bucket = argv[2],
                                                   .target = client->get(),
                                                   .target_bucket = argv[3],
                                                   .origin_region = "east",
                                                   .part_size = part_size});
  if (!applier.ok()) {
    std::fprintf(stderr, "%s\n", applier.status().ToString().c_str());
    return 1;
  }
  auto result = (*applier)->ApplyKey(argv[4]);
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("applied %s: %d parts, %llu bytes\n", argv[4], result->parts,
              static_cast<unsigned long long>(result->bytes));
  return 0;
}
