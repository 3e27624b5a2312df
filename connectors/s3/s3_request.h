// The S3 client's requests and answers, and the helpers its calls share: internal to
// connectors/s3 (s3_client.cc sends them; s3_client_lists.cc holds the listing, multipart and
// notification calls). Not part of the connector's interface.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "connectors/s3/s3_client.h"

namespace ferry::s3 {

struct S3Client::Request {
  std::string method;
  std::string bucket;
  std::string key;  // raw; "" for a bucket request
  std::vector<std::pair<std::string, std::string>> query;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string_view body;
  // Supplies the body as it is sent (`upload_size` bytes; `body` is unused); null: `body`.
  const std::function<absl::StatusOr<size_t>(char*, size_t)>* on_upload = nullptr;
  uint64_t upload_size = 0;
  // The signature does not cover the body (x-amz-content-sha256: UNSIGNED-PAYLOAD); the
  // body's integrity rests on a Content-MD5 header the server checks.
  bool unsigned_payload = false;
  bool no_body_answer = false;  // HEAD
  // Streams the answer's body (2xx only); null: collected in Response::body.
  const std::function<absl::Status(std::string_view)>* on_data = nullptr;
  std::string what() const {
    return absl::StrCat(method, " ", bucket, key.empty() ? "" : "/", key);
  }
};

struct S3Client::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

namespace internal {

// An ETag without its quotes.
std::string Unquote(std::string etag);
// kInvalidArgument for an empty bucket, or a key that is empty or over kMaxKeyBytes.
absl::Status CheckKey(const std::string& bucket, const std::string& key);
// Content type, x-amz-meta-* and Content-MD5 headers of a PUT; kInvalidArgument for a value
// with a line break or a content_md5 that is not 32 hex digits.
absl::Status AddPutHeaders(const PutOptions& options, std::map<std::string, std::string>* h);

}  // namespace internal
}  // namespace ferry::s3
