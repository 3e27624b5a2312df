#include "connectors/postgres/source/ddl_capture.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/escaping.h"

namespace ferry::pg {
namespace {

std::string Sign(const std::string& key, const std::string& payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return absl::BytesToHexString(std::string(reinterpret_cast<char*>(mac), len)) + " " + payload;
}

TEST(DdlCaptureTest, OnlyMessagesSignedWithTheKeyAreAuthenticated) {
  const std::string key(32, '\x42');
  const std::string payload = R"({"v":1,"tag":"DROP TABLE","query":"drop table t"})";
  const std::string signed_message = Sign(key, payload);
  EXPECT_EQ(VerifyFerryMessage(key, signed_message), payload);
  EXPECT_EQ(VerifyFerryMessage(key, Sign(key, "")), "");

  EXPECT_FALSE(VerifyFerryMessage(std::string(32, '\x43'), signed_message));  // another key
  EXPECT_FALSE(VerifyFerryMessage("", signed_message));                       // no key loaded
  std::string tampered = signed_message;
  tampered.back() = 'X';
  EXPECT_FALSE(VerifyFerryMessage(key, tampered));
  std::string upper = signed_message;
  for (size_t i = 0; i < 64; ++i) upper[i] = static_cast<char>(toupper(upper[i]));
  if (upper != signed_message) {
    EXPECT_FALSE(VerifyFerryMessage(key, upper));
  }
  EXPECT_FALSE(VerifyFerryMessage(key, payload));  // unsigned
  EXPECT_FALSE(VerifyFerryMessage(key, std::string(64, 'z') + " " + payload));
  EXPECT_FALSE(VerifyFerryMessage(key, signed_message.substr(0, 64)));
  EXPECT_FALSE(VerifyFerryMessage(key, signed_message.substr(1)));
  EXPECT_FALSE(VerifyFerryMessage(key, ""));
  // A signature is over the exact payload: appending to it breaks it (no length extension).
  EXPECT_FALSE(VerifyFerryMessage(key, signed_message + "x"));
}

TEST(DdlCaptureTest, TheInstallScriptIsCompiledInAndVersioned) {
  const std::string_view sql = DdlCaptureSql();
  EXPECT_NE(sql.find("CREATE OR REPLACE FUNCTION ferry.capture_ddl()"), std::string::npos);
  EXPECT_NE(sql.find("COMMENT ON FUNCTION ferry.capture_ddl() IS 'ferry ddl capture v10'"),
            std::string::npos);
  EXPECT_NE(sql.find("SECURITY DEFINER SET search_path = pg_catalog, pg_temp"), std::string::npos);
}

}  // namespace
}  // namespace ferry::pg
