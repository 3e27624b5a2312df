// SigV4: AWS Signature Version 4 for S3 requests, computed here (OpenSSL) rather than by
// curl 7.88's CURLOPT_AWS_SIGV4, which mis-signs query strings with empty-valued
// sub-resources (`?versioning`), encodes some key bytes differently from S3, and signs the
// payload hash only when told. Owning the canonical request means the bytes we sign are the
// bytes we send: the path is encoded once, by UriEncode below, and handed to curl as is.
//
// Example:
//   SignedRequest r{.method = "PUT", .host = "127.0.0.1:7480",
//                   .path = "/" + bucket + "/" + UriEncode(key, /*keep_slash=*/true),
//                   .query = {{"versionId", v}}, .payload_sha256 = Sha256Hex(body)};
//   std::vector<std::string> headers = SignV4(r, credentials, "us-east-1", absl::Now());
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace ferry::s3 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // "" when none
};

// A request as it will be sent. `path` is already encoded (UriEncode); query names and values
// are raw (encoded by SignV4 and by CanonicalQuery for the URL). Header names are lowercase.
struct SignedRequest {
  std::string method;
  std::string host;  // the Host header: "host" or "host:port" as in the URL
  std::string path;  // "/bucket/encoded/key"
  std::vector<std::pair<std::string, std::string>> query;
  std::map<std::string, std::string> headers;  // extra headers to sign (content-type, x-amz-meta-*)
  // Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". Sent as x-amz-content-sha256.
  std::string payload_sha256;
};

// S3's URI encoding: every byte but A-Z a-z 0-9 - . _ ~ becomes %XX (uppercase hex); '/'
// stays when keep_slash (object keys in paths).
std::string UriEncode(std::string_view in, bool keep_slash);

// The query string as signed and as sent: each name=value encoded, sorted by name then value;
// a sub-resource without a value is written "name=" (S3 wants the '=' when signing).
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);

std::string Sha256Hex(std::string_view data);

// Returns the headers to send ("Name: value"): Authorization, x-amz-date,
// x-amz-content-sha256, x-amz-security-token when set, and request.headers.
std::vector<std::string> SignV4(const SignedRequest& request, const Credentials& credentials,
                                const std::string& region, absl::Time now);

// The signature alone (for tests against published vectors).
std::string SignatureV4(const SignedRequest& request, const Credentials& credentials,
                        const std::string& region, absl::Time now);

}  // namespace ferry::s3
