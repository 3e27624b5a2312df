// Mutual TLS between regions: certificates made at test time with the openssl CLI. A peer
// without a certificate of the right CA, or with the wrong token, is refused, and the shipper's
// status says why.
#include <gtest/gtest.h>

#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_test_util.h"
#include "tests/support/temp_dir.h"

namespace ferry::replication {
namespace {

using ::ferry::testing::TempDir;
using testing::AppendRecords;
using testing::CompareLogs;
using testing::StandbyRegion;
using testing::TestPki;
using testing::TestShipperOptions;
using testing::WaitUntil;

class ReplicationSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::MakeTestPki(dir_.path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    auto log = DurableLog::Open({.path = dir_.File("outbound")});
    ASSERT_TRUE(log.ok()) << log.status();
    outbound_ = *std::move(log);
    StandbyRegion::Options options;
    options.dir = dir_.path();
    options.receiver.region = "west";
    options.receiver.token = "secret-token";
    options.server.tls = {pki_.ca_pem, pki_.server_cert_pem, pki_.server_key_pem};
    auto standby = StandbyRegion::Start(options);
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = *std::move(standby);
    ASSERT_TRUE(AppendRecords(outbound_.get(), 50).ok());
  }

  ShipperOptions Options(TlsOptions tls) {
    ShipperOptions options = TestShipperOptions(standby_->address());
    options.tls = std::move(tls);
    return options;
  }

  // Starts a shipper that must be refused; returns its last error.
  std::string Refused(const ShipperOptions& options) {
    auto shipper = Shipper::Start(options, outbound_.get());
    EXPECT_TRUE(shipper.ok()) << shipper.status();
    if (!shipper.ok()) return "";
    EXPECT_TRUE(WaitUntil([&] { return (*shipper)->status().disconnects >= 2; }));
    const ShipperStatus s = (*shipper)->status();
    EXPECT_EQ(s.connects, 0u);
    EXPECT_FALSE(s.connected);
    EXPECT_FALSE(s.last_error.empty());
    EXPECT_EQ(standby_->inbound()->next_seq(), 1u);
    EXPECT_EQ(standby_->receiver()->status().streams_accepted, 0u);
    return s.last_error;
  }

  TempDir dir_{"ferry-tls"};
  TestPki pki_;
  std::unique_ptr<DurableLog> outbound_;
  std::unique_ptr<StandbyRegion> standby_;
};

TEST_F(ReplicationSecurityTest, MutualTlsShips) {
  auto shipper = Shipper::Start(Options({pki_.ca_pem, pki_.client_cert_pem, pki_.client_key_pem}),
                                outbound_.get());
  ASSERT_TRUE(shipper.ok()) << shipper.status();
  ASSERT_TRUE((*shipper)->WaitForAck(51, absl::Now() + absl::Seconds(30)))
      << (*shipper)->status().last_error;
  (*shipper)->Stop();
  EXPECT_EQ(CompareLogs(*outbound_, *standby_->inbound()), "");
}

TEST_F(ReplicationSecurityTest, ClientCertificateOfAnotherCaIsRefused) {
  const std::string error =
      Refused(Options({pki_.ca_pem, pki_.rogue_cert_pem, pki_.rogue_key_pem}));
  EXPECT_NE(error.find("UNAVAILABLE"), std::string::npos) << error;
  std::cerr << "shipper error with a rogue client certificate: " << error << "\n";
}

TEST_F(ReplicationSecurityTest, ServerOfAnotherCaIsNotTrusted) {
  const std::string error =
      Refused(Options({pki_.rogue_ca_pem, pki_.client_cert_pem, pki_.client_key_pem}));
  EXPECT_NE(error.find("UNAVAILABLE"), std::string::npos) << error;
  std::cerr << "shipper error with an untrusted server: " << error << "\n";
}

TEST_F(ReplicationSecurityTest, PlaintextShipperIsRefused) {
  const std::string error = Refused(Options({}));
  EXPECT_NE(error.find("UNAVAILABLE"), std::string::npos) << error;
}

TEST_F(ReplicationSecurityTest, IncompleteTlsOptionsAreAConfigurationError) {
  const std::string error = Refused(Options({pki_.ca_pem, "", ""}));
  EXPECT_NE(error.find("INVALID_ARGUMENT"), std::string::npos) << error;
}

TEST_F(ReplicationSecurityTest, RightCertificateWrongTokenIsRefused) {
  ShipperOptions options = Options({pki_.ca_pem, pki_.client_cert_pem, pki_.client_key_pem});
  options.token = "guess";
  const std::string error = Refused(options);
  EXPECT_NE(error.find("UNAUTHENTICATED"), std::string::npos) << error;
  EXPECT_NE(error.find("wrong replication token"), std::string::npos) << error;
  EXPECT_NE(standby_->receiver()->status().last_error.find("wrong replication token"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry::replication
