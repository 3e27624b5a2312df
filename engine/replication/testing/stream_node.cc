// stream_node: a shipper or a receiver as a standalone process over a log directory, for the
// multi-process crash test (engine/replication/replication_crash_test.cc) and manual experiments.
// Test-only: built with FERRY_BUILD_TESTS, not part of ferryd.
//
//   stream_node --role=receiver --log=DIR --listen=127.0.0.1:0 --port_file=FILE
//       Serves the replication stream into the inbound log at DIR; writes the bound port to FILE
//       (atomically, via rename) once listening. Runs until SIGTERM/SIGINT (or SIGKILL).
//   stream_node --role=shipper --log=DIR --peer=HOST:PORT --produce=N [--seed=S]
//       Appends records to the outbound log at DIR until it holds N (continuing where a killed
//       run stopped; the payload of record s is StreamNodePayload(s)), ships them, and exits 0
//       once the peer acknowledged all N.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/log/durable_log.h"
#include "engine/replication/receiver.h"
#include "engine/replication/server.h"
#include "engine/replication/shipper.h"
#include "engine/replication/testing/stream_node_payload.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, role, "", "shipper or receiver");
ABSL_FLAG(std::string, log, "", "directory of the durable log");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "receiver: listen address");
ABSL_FLAG(std::string, port_file, "", "receiver: file that receives the bound port");
ABSL_FLAG(std::string, peer, "", "shipper: the receiver's address");
ABSL_FLAG(uint64_t, produce, 0, "shipper: total records the outbound log must hold");
ABSL_FLAG(uint64_t, seed, 1, "shipper: seed of the append sizes");
ABSL_FLAG(std::string, token, "stream-node-token", "shared replication token");

namespace ferry::replication {
namespace {

int Fail(const absl::Status& s) {
  spdlog::error("stream_node: {}", s.ToString());
  return 2;
}

int RunReceiver(DurableLog* log) {
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  ReceiverOptions options{
      .region = "west",
      .expected_peer_region = "east",
      .token = absl::GetFlag(FLAGS_token),
      .epoch = [] { return uint64_t{1}; },
      .adopt_epoch =
          [](uint64_t) { return absl::FailedPreconditionError("stream_node keeps epoch 1"); }};
  auto receiver = Receiver::Create(options, log);
  if (!receiver.ok()) return Fail(receiver.status());
  auto server =
      ReplicationServer::Start({.listen_address = absl::GetFlag(FLAGS_listen)}, receiver->get());
  if (!server.ok()) return Fail(server.status());
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return Fail(absl::InternalError("cannot write " + tmp));
    std::fprintf(f, "%d\n", (*server)->port());
    std::fclose(f);
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      return Fail(absl::InternalError("cannot rename " + tmp));
    }
  }
  spdlog::info("stream_node: receiver listening on port {}", (*server)->port());
  int signal = 0;
  sigwait(&stop, &signal);
  spdlog::info("stream_node: receiver stopping (signal {})", signal);
  (*server)->Shutdown();
  return 0;
}

int RunShipper(DurableLog* log) {
  ShipperOptions options{.region = "east",
                         .epoch = [] { return uint64_t{1}; },
                         .peer_address = absl::GetFlag(FLAGS_peer),
                         .token = absl::GetFlag(FLAGS_token),
                         .max_batch_bytes = 8 << 10,  // many small batches: more kill points
                         .backoff = {.min = absl::Milliseconds(20), .max = absl::Milliseconds(200)},
                         .connect_timeout = absl::Seconds(5),
                         .ack_timeout = absl::Seconds(5)};
  auto shipper = Shipper::Start(options, log);
  if (!shipper.ok()) return Fail(shipper.status());
  const uint64_t total = absl::GetFlag(FLAGS_produce);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed) ^ log->next_seq());
  while (log->next_seq() <= total) {
    AppendRequest request;
    const uint64_t first = log->next_seq();
    const uint64_t n = std::min<uint64_t>(1 + rng() % 20, total + 1 - first);
    for (uint64_t s = first; s < first + n; ++s) {
      request.records.push_back({StreamNodeKind(s), StreamNodePayload(s)});
    }
    request.expected_first_seq = first;
    if (absl::Status s = log->Append(std::move(request)).status(); !s.ok()) return Fail(s);
    // Production is spread over the run so that kills land while both appending and shipping.
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 1500));
  }
  while (!(*shipper)->WaitForAck(total + 1, absl::Now() + absl::Seconds(1))) {
  }
  spdlog::info("stream_node: shipper done, {} records acknowledged", total);
  (*shipper)->Stop();
  return 0;
}

}  // namespace
}  // namespace ferry::replication

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto log = ferry::DurableLog::Open({.path = absl::GetFlag(FLAGS_log)});
  if (!log.ok()) return ferry::replication::Fail(log.status());
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "receiver") return ferry::replication::RunReceiver(log->get());
  if (role == "shipper") return ferry::replication::RunShipper(log->get());
  return ferry::replication::Fail(absl::InvalidArgumentError("--role must be shipper or receiver"));
}
