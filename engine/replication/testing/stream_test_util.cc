#include "engine/replication/testing/stream_test_util.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/replication/testing/stream_node_payload.h"

namespace ferry::replication::testing {

absl::Status AppendRecords(DurableLog* log, uint64_t n, uint64_t per_append) {
  while (n > 0) {
    const uint64_t k = std::min(n, per_append);
    AppendRequest request;
    const uint64_t first = log->next_seq();
    for (uint64_t s = first; s < first + k; ++s) {
      request.records.push_back({StreamNodeKind(s), StreamNodePayload(s)});
    }
    request.expected_first_seq = first;
    FERRY_RETURN_IF_ERROR(log->Append(std::move(request)).status());
    n -= k;
  }
  return absl::OkStatus();
}

std::string CompareLogs(const DurableLog& expected, const DurableLog& actual) {
  if (expected.next_seq() != actual.next_seq()) {
    return absl::StrCat("next_seq differs: expected ", expected.next_seq(), ", actual ",
                        actual.next_seq());
  }
  uint64_t seq = std::max(expected.first_seq(), actual.first_seq());
  while (seq < expected.next_seq()) {
    auto a = expected.Read(seq, 1000, 1 << 20);
    auto b = actual.Read(seq, 1000, 1 << 20);
    if (!a.ok() || !b.ok()) {
      return absl::StrCat("read at ", seq, " failed: ", a.status().ToString(), " / ",
                          b.status().ToString());
    }
    const size_t n = std::min(a->size(), b->size());
    if (n == 0) return absl::StrCat("no record at ", seq);
    for (size_t i = 0; i < n; ++i) {
      const LogRecord& x = (*a)[i];
      const LogRecord& y = (*b)[i];
      if (x.seq != seq || y.seq != seq || x.kind != y.kind || x.payload != y.payload) {
        return absl::StrCat("record ", seq, " differs");
      }
      ++seq;
    }
  }
  return "";
}

StandbyRegion::StandbyRegion(Options options)
    : options_(std::move(options)),
      epoch_(std::make_shared<std::atomic<uint64_t>>(options_.initial_epoch)),
      adopted_mu_(std::make_shared<absl::Mutex>()),
      adopted_(std::make_shared<std::vector<uint64_t>>()) {
  options_.receiver.epoch = [e = epoch_] { return e->load(); };
  options_.receiver.adopt_epoch = [e = epoch_, mu = adopted_mu_, list = adopted_](uint64_t v) {
    absl::MutexLock lock(mu.get());
    list->push_back(v);
    e->store(v);
    return absl::OkStatus();
  };
}

absl::StatusOr<std::unique_ptr<StandbyRegion>> StandbyRegion::Start(Options options) {
  std::unique_ptr<StandbyRegion> region(new StandbyRegion(std::move(options)));
  FERRY_RETURN_IF_ERROR(region->Serve());
  return region;
}

StandbyRegion::~StandbyRegion() { Stop(); }

absl::Status StandbyRegion::Serve() {
  FERRY_ASSIGN_OR_RETURN(log_, DurableLog::Open({.path = options_.dir + "/inbound",
                                                 .file_system = options_.file_system}));
  FERRY_ASSIGN_OR_RETURN(receiver_, Receiver::Create(options_.receiver, log_.get()));
  ReplicationServerOptions server = options_.server;
  if (port_ != 0) server.listen_address = address();
  // The port was ours a moment ago; binding it again may need a few tries.
  absl::Status last;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto started = ReplicationServer::Start(server, receiver_.get());
    if (started.ok()) {
      server_ = *std::move(started);
      port_ = server_->port();
      return absl::OkStatus();
    }
    last = started.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

void StandbyRegion::Stop() {
  if (server_ != nullptr) server_->Shutdown();
  server_.reset();
  receiver_.reset();
  log_.reset();
}

absl::Status StandbyRegion::Restart() {
  Stop();
  return Serve();
}

std::vector<uint64_t> StandbyRegion::adopted() const {
  absl::MutexLock lock(adopted_mu_.get());
  return *adopted_;
}

ShipperOptions TestShipperOptions(const std::string& peer_address, uint64_t epoch) {
  ShipperOptions o;
  o.region = "east";
  o.epoch = [epoch] { return epoch; };
  o.peer_address = peer_address;
  o.token = "secret-token";
  o.compression_level = 3;
  o.max_batch_bytes = 16 << 10;
  o.backoff = {.min = absl::Milliseconds(10), .max = absl::Milliseconds(200)};
  o.backoff_seed = 7;
  o.connect_timeout = absl::Seconds(3);
  o.ack_timeout = absl::Seconds(2);
  o.keepalive_interval = absl::Milliseconds(500);
  return o;
}

namespace {

absl::Status Run(const std::string& command) {
  const int rc = std::system((command + " >/dev/null 2>&1").c_str());
  if (rc != 0) return absl::InternalError(absl::StrCat("command failed (", rc, "): ", command));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A key and a certificate for `cn`, signed by the CA at dir/CA.{crt,key}.
absl::Status MakeCert(const std::string& dir, const std::string& ca, const std::string& name) {
  const std::string d = dir + "/";
  std::ofstream ext(d + name + ".ext");
  ext << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
      << "extendedKeyUsage=serverAuth,clientAuth\n";
  ext.close();
  FERRY_RETURN_IF_ERROR(Run(absl::StrCat("openssl req -newkey rsa:2048 -nodes -keyout ", d, name,
                                         ".key -subj /CN=127.0.0.1 -out ", d, name, ".csr")));
  return Run(absl::StrCat("openssl x509 -req -in ", d, name, ".csr -CA ", d, ca, ".crt -CAkey ", d,
                          ca, ".key -CAcreateserial -days 2 -sha256 -extfile ", d, name,
                          ".ext -out ", d, name, ".crt"));
}

absl::Status MakeCa(const std::string& dir, const std::string& name) {
  return Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", name,
                          " -keyout ", dir, "/", name, ".key -out ", dir, "/", name, ".crt"));
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir) {
  FERRY_RETURN_IF_ERROR(MakeCa(dir, "ca"));
  FERRY_RETURN_IF_ERROR(MakeCa(dir, "rogue_ca"));
  FERRY_RETURN_IF_ERROR(MakeCert(dir, "ca", "server"));
  FERRY_RETURN_IF_ERROR(MakeCert(dir, "ca", "client"));
  FERRY_RETURN_IF_ERROR(MakeCert(dir, "rogue_ca", "rogue"));
  TestPki pki;
  const std::string d = dir + "/";
  FERRY_ASSIGN_OR_RETURN(pki.ca_pem, ReadFile(d + "ca.crt"));
  FERRY_ASSIGN_OR_RETURN(pki.server_cert_pem, ReadFile(d + "server.crt"));
  FERRY_ASSIGN_OR_RETURN(pki.server_key_pem, ReadFile(d + "server.key"));
  FERRY_ASSIGN_OR_RETURN(pki.client_cert_pem, ReadFile(d + "client.crt"));
  FERRY_ASSIGN_OR_RETURN(pki.client_key_pem, ReadFile(d + "client.key"));
  FERRY_ASSIGN_OR_RETURN(pki.rogue_ca_pem, ReadFile(d + "rogue_ca.crt"));
  FERRY_ASSIGN_OR_RETURN(pki.rogue_cert_pem, ReadFile(d + "rogue.crt"));
  FERRY_ASSIGN_OR_RETURN(pki.rogue_key_pem, ReadFile(d + "rogue.key"));
  return pki;
}

}  // namespace ferry::replication::testing
