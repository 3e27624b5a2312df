// Fixtures of the replication tests: a standby region (inbound log, Receiver, server) whose
// epoch the test controls, a throwaway certificate authority made with the openssl CLI, and
// helpers that fill and compare logs. Test-only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/log/durable_log.h"
#include "engine/replication/receiver.h"
#include "engine/replication/server.h"
#include "engine/replication/shipper.h"
#include "tests/support/wait_until.h"

namespace ferry::replication::testing {

// Appends `n` records (StreamNodePayload) in appends of up to `per_append` records.
[[nodiscard]] absl::Status AppendRecords(DurableLog* log, uint64_t n, uint64_t per_append = 7);

// Every record of both logs, compared one by one: same sequences, kinds and payloads, no gap.
// Returns a description of the first difference, or "" when equal.
std::string CompareLogs(const DurableLog& expected, const DurableLog& actual);

using ::ferry::testing::WaitUntil;

// A standby: inbound log + Receiver + ReplicationServer, restartable on the same port.
class StandbyRegion {
 public:
  struct Options {
    std::string dir;           // the inbound log lives in dir/inbound
    ReceiverOptions receiver;  // epoch/adopt_epoch are filled in by the fixture
    ReplicationServerOptions server;
    uint64_t initial_epoch = 1;
    // The file system of the inbound log; null: the real one (tests inject faults here).
    std::shared_ptr<rocksdb::FileSystem> file_system;
  };
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StandbyRegion>> Start(Options options);
  ~StandbyRegion();

  // Stops the server and the receiver and closes the inbound log.
  void Stop();
  // Stop, then reopen the log and serve again on the same port.
  [[nodiscard]] absl::Status Restart();

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  DurableLog* inbound() const { return log_.get(); }
  Receiver* receiver() const { return receiver_.get(); }
  uint64_t epoch() const { return epoch_->load(); }
  void set_epoch(uint64_t e) { epoch_->store(e); }
  // Epochs passed to adopt_epoch, in order.
  std::vector<uint64_t> adopted() const;

 private:
  explicit StandbyRegion(Options options);
  [[nodiscard]] absl::Status Serve();
  Options options_;
  std::shared_ptr<std::atomic<uint64_t>> epoch_;
  std::shared_ptr<absl::Mutex> adopted_mu_;
  std::shared_ptr<std::vector<uint64_t>> adopted_;
  std::unique_ptr<DurableLog> log_;
  std::unique_ptr<Receiver> receiver_;
  std::unique_ptr<ReplicationServer> server_;
  int port_ = 0;
};

// Shipper options for tests: fast backoff and timeouts, a fixed seed.
ShipperOptions TestShipperOptions(const std::string& peer_address, uint64_t epoch = 1);

// A CA and certificates made with the openssl CLI in `dir`.
struct TestPki {
  std::string ca_pem;
  std::string server_cert_pem, server_key_pem;  // CN/SAN 127.0.0.1 and localhost
  std::string client_cert_pem, client_key_pem;
  // Signed by another CA, with the same names.
  std::string rogue_ca_pem;
  std::string rogue_cert_pem, rogue_key_pem;
};
[[nodiscard]] absl::StatusOr<TestPki> MakeTestPki(const std::string& dir);

}  // namespace ferry::replication::testing
