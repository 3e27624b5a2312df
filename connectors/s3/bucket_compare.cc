#include "connectors/s3/bucket_compare.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "connectors/s3/object_applier.h"
#include "connectors/s3/replica_marker.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {
namespace {

absl::StatusOr<std::map<std::string, ListedObject>> CurrentObjects(S3Client& client,
                                                                   const std::string& bucket) {
  std::map<std::string, ListedObject> out;
  std::string token;
  do {
    FERRY_ASSIGN_OR_RETURN(ListPage page, client.ListObjectsV2(bucket, "", token));
    for (ListedObject& o : page.objects) out[o.key] = std::move(o);
    token = page.next_continuation_token;
  } while (!token.empty());
  return out;
}

}  // namespace

absl::StatusOr<BucketComparison> CompareBuckets(S3Client& a, const std::string& bucket_a,
                                                S3Client& b, const std::string& bucket_b,
                                                const CompareOptions& options) {
  FERRY_ASSIGN_OR_RETURN(auto in_a, CurrentObjects(a, bucket_a));
  FERRY_ASSIGN_OR_RETURN(auto in_b, CurrentObjects(b, bucket_b));
  BucketComparison result;
  auto differ = [&](std::string what) {
    ++result.differences;
    if (result.shown.size() < options.max_shown) result.shown.push_back(std::move(what));
  };
  for (const auto& [key, listed] : in_a) {
    ++result.keys_compared;
    if (in_b.count(key) == 0) {
      differ(absl::StrCat("'", key, "': only in ", bucket_a));
      continue;
    }
    FERRY_ASSIGN_OR_RETURN(ObjectInfo ha, a.HeadObject(bucket_a, key));
    FERRY_ASSIGN_OR_RETURN(ObjectInfo hb, b.HeadObject(bucket_b, key));
    if (ha.size != hb.size) {
      differ(absl::StrCat("'", key, "': size ", ha.size, " vs ", hb.size));
      continue;
    }
    if (ha.content_type != hb.content_type) {
      differ(absl::StrCat("'", key, "': content type '", ha.content_type, "' vs '", hb.content_type,
                          "'"));
      continue;
    }
    if (UserMetadata(ha.metadata) != UserMetadata(hb.metadata)) {
      differ(absl::StrCat("'", key, "': user metadata differs"));
      continue;
    }
    if (options.compare_bodies) {
      FERRY_ASSIGN_OR_RETURN(std::string ba, a.GetObject(bucket_a, key));
      FERRY_ASSIGN_OR_RETURN(std::string bb, b.GetObject(bucket_b, key));
      if (ba != bb) differ(absl::StrCat("'", key, "': content differs"));
    } else if (!HoldsSourceState(hb, ha, key) && !HoldsSourceState(ha, hb, key)) {
      differ(absl::StrCat("'", key, "': ETag ", ha.etag, " vs ", hb.etag));
    }
  }
  for (const auto& [key, listed] : in_b) {
    if (in_a.count(key) == 0) {
      ++result.keys_compared;
      differ(absl::StrCat("'", key, "': only in ", bucket_b));
    }
  }
  return result;
}

}  // namespace ferry::s3
