#include "connectors/s3/digest.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"

namespace ferry::s3 {
namespace {

EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }

void Check(int ok, const char* what) {
  if (ok == 1) return;
  std::fprintf(stderr, "ferry: OpenSSL digest failed: %s\n", what);
  std::abort();
}

}  // namespace

Digest::Digest(Kind kind) : ctx_(EVP_MD_CTX_new()) {
  Check(ctx_ != nullptr ? 1 : 0, "EVP_MD_CTX_new");
  Check(EVP_DigestInit_ex(Ctx(ctx_), kind == kMd5 ? EVP_md5() : EVP_sha256(), nullptr),
        "EVP_DigestInit_ex");
}

Digest::~Digest() { EVP_MD_CTX_free(Ctx(ctx_)); }

void Digest::Update(std::string_view data) {
  Check(EVP_DigestUpdate(Ctx(ctx_), data.data(), data.size()), "EVP_DigestUpdate");
}

std::string Digest::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  Check(EVP_DigestFinal_ex(Ctx(ctx_), digest, &len), "EVP_DigestFinal_ex");
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string Digest::HexFinish() { return absl::BytesToHexString(Finish()); }

}  // namespace ferry::s3
