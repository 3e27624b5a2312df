// Digest: an incremental MD5 or SHA-256 (OpenSSL's EVP), the S3 connector's two body hashes: a
// single-part object's ETag is its body's MD5, and bodies are compared by SHA-256. A failure
// inside OpenSSL (out of memory) aborts the process. Not thread-safe; one digest per body.
//
// Example:
//   Digest md5(Digest::kMd5);
//   md5.Update(chunk);  // as the body streams
//   std::string etag = md5.HexFinish();
#pragma once

#include <string>
#include <string_view>

namespace ferry::s3 {

class Digest {
 public:
  enum Kind { kMd5, kSha256 };
  explicit Digest(Kind kind);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  void Update(std::string_view data);
  // The digest's bytes (16 for MD5, 32 for SHA-256). Ends the digest: call once.
  std::string Finish();
  // The same as lowercase hex.
  std::string HexFinish();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

}  // namespace ferry::s3
