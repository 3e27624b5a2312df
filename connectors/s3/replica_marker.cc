#include "connectors/s3/replica_marker.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "connectors/s3/sigv4.h"

namespace ferry::s3 {
namespace {

std::string KeyTag(const std::string& key) { return Sha256Hex(key).substr(0, 16); }

}  // namespace

std::string FormatReplicaMarker(const std::string& origin_region, const std::string& source_etag,
                                const std::string& key) {
  return absl::StrCat("1 ", origin_region, " ", source_etag, " ", KeyTag(key));
}

std::optional<ReplicaMarker> ReadReplicaMarker(const std::map<std::string, std::string>& metadata,
                                               const std::string& key) {
  auto it = metadata.find(kReplicaMetadata);
  if (it == metadata.end()) return std::nullopt;
  std::vector<std::string> parts = absl::StrSplit(it->second, ' ');
  if (parts.size() != 4 || parts[0] != "1" || parts[1].empty() || parts[3] != KeyTag(key)) {
    return std::nullopt;
  }
  return ReplicaMarker{.origin_region = parts[1], .source_etag = parts[2]};
}

std::map<std::string, std::string> UserMetadata(std::map<std::string, std::string> metadata) {
  metadata.erase(kReplicaMetadata);
  return metadata;
}

}  // namespace ferry::s3
