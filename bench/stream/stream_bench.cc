// stream_bench: throughput of the replication stream (shipper -> FaultProxy -> receiver) with
// and without network latency and compression, against a plain TCP copy of the same bytes
// through the same proxy. See README.md beside this file.
//
// One run of a Ferry configuration: a fresh inbound log and receiver, a proxy with the given
// one-way latency, and a shipper started paused on the pre-filled outbound log. Once the
// handshake is done the shipper is resumed and the clock runs until every record is durable in
// the inbound log and acknowledged (Shipper::WaitForAck). The plain TCP copy is timed the same
// way: from the first byte written on an established connection to the sink's acknowledgement.
//
// The machine is shared and noisy, so the figures that count are the ratios, each computed
// within one repetition (configurations alternate within it), then the median over repetitions.

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/stream/tcp_copy.h"
#include "bench/stream/tpcb_records.h"
#include "engine/base/status_macros.h"
#include "engine/log/durable_log.h"
#include "engine/replication/batch_codec.h"
#include "engine/replication/receiver.h"
#include "engine/replication/server.h"
#include "engine/replication/shipper.h"
#include "engine/replication/stream_format.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(uint64_t, records, 200000, "TPC-B transactions in the outbound log");
ABSL_FLAG(int, reps, 3, "repetitions of every configuration (the median is reported)");
ABSL_FLAG(int, latency_ms, 20, "one-way latency of the slow network (round trip: twice)");
ABSL_FLAG(double, bandwidth_mb, 0,
          "proxy bandwidth per direction in MB/s for every configuration; 0: unlimited");
ABSL_FLAG(int, scale, 100, "pgbench scale factor of the generated transactions");
ABSL_FLAG(int, window_mb, 64, "ShipperOptions::window_bytes, MiB");
ABSL_FLAG(int, batch_kb, 4096, "ShipperOptions::max_batch_bytes, KiB");
ABSL_FLAG(std::string, only, "",
          "run only the configurations whose name contains this (for profiling; no ratios)");
ABSL_FLAG(bool, inbound_sync, true,
          "sync the inbound log's appends (production: true; false shows what syncing costs)");
ABSL_FLAG(bool, trace, false, "print the stream's progress every 100 ms (Ferry runs)");
ABSL_FLAG(bool, stage_costs, false,
          "measure the stages of one batch (read, encode, decode, durable append) and exit");
ABSL_FLAG(std::string, dir, "", "where the logs live (default: a fresh directory in /tmp)");

namespace ferry::bench {
namespace {

using replication::ReceiverOptions;
using replication::ReplicationServer;
using replication::Shipper;
using replication::ShipperOptions;

struct Config {
  std::string name;
  bool tcp = false;   // the plain TCP copy instead of Ferry
  int level = 0;      // zstd level (Ferry only)
  bool slow = false;  // with latency
};

struct Result {
  absl::Duration took;
  uint64_t payload_bytes = 0;  // what was moved, uncompressed
  uint64_t blob_bytes = 0;     // batch blobs as sent (Ferry)
  uint64_t proxy_to_target = 0;
  uint64_t proxy_to_client = 0;
  uint64_t batches = 0;
  uint64_t max_inflight_batches = 0;
  uint64_t max_inflight_bytes = 0;
  uint64_t inbound_commits = 0;  // group commits of the inbound log
  double cpu_seconds = 0;        // user + system time of the process while timed
};

// User + system CPU time of this process so far.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// A TPC-B transaction: 3 UPDATEs and 1 INSERT.
constexpr double kChangesPerRecord = 4;

uint64_t BandwidthBytes() { return uint64_t(absl::GetFlag(FLAGS_bandwidth_mb) * 1e6); }

struct Outbound {
  std::unique_ptr<DurableLog> log;
  uint64_t records = 0;
  uint64_t payload_bytes = 0;
};

absl::StatusOr<Outbound> Prefill(const std::string& path, uint64_t n, int scale) {
  Outbound out;
  FERRY_ASSIGN_OR_RETURN(out.log, DurableLog::Open({.path = path}));
  TpcbRecordMaker maker({.scale = scale, .seed = 42});
  constexpr uint64_t kPerAppend = 1000;
  for (uint64_t done = 0; done < n;) {
    AppendRequest request;
    for (; done < n && request.records.size() < kPerAppend; ++done) {
      std::string payload = maker.Next();
      out.payload_bytes += payload.size();
      request.records.push_back({RecordKind::kTransaction, std::move(payload)});
    }
    FERRY_RETURN_IF_ERROR(out.log->Append(std::move(request)).status());
  }
  out.records = n;
  // Read everything once, so that no run pays for a cold cache.
  for (uint64_t seq = out.log->first_seq(); seq < out.log->next_seq();) {
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> r, out.log->Read(seq, 10000, 16 << 20));
    seq += r.size();
  }
  return out;
}

absl::StatusOr<Result> RunFerry(const Outbound& outbound, const std::string& inbound_path,
                                int level, absl::Duration one_way) {
  std::filesystem::remove_all(inbound_path);
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<DurableLog> inbound,
      DurableLog::Open({.path = inbound_path, .sync = absl::GetFlag(FLAGS_inbound_sync)}));
  ReceiverOptions receiver_options;
  receiver_options.region = "west";
  receiver_options.epoch = [] { return uint64_t{1}; };
  receiver_options.adopt_epoch = [](uint64_t) { return absl::OkStatus(); };
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<replication::Receiver> receiver,
                         replication::Receiver::Create(receiver_options, inbound.get()));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<ReplicationServer> server,
                         ReplicationServer::Start({}, receiver.get()));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<testing::FaultProxy> proxy,
                         testing::FaultProxy::Start("127.0.0.1", server->port()));
  proxy->SetLatency(one_way);
  proxy->SetBandwidth(BandwidthBytes());

  // The fresh inbound log makes the shipper start over at the first record; its "acked"
  // cursor from the previous run must not make WaitForAck return early.
  DurableLog* log = outbound.log.get();
  FERRY_RETURN_IF_ERROR(log->SetCursor(kAckedCursor, log->first_seq()));
  ShipperOptions options;
  options.region = "east";
  options.epoch = [] { return uint64_t{1}; };
  options.peer_address = proxy->address();
  options.compression_level = level;
  options.window_bytes = size_t(absl::GetFlag(FLAGS_window_mb)) << 20;
  options.max_batch_bytes = size_t(absl::GetFlag(FLAGS_batch_kb)) << 10;
  options.start_paused = true;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Shipper> shipper, Shipper::Start(options, log));

  const absl::Time connect_deadline = absl::Now() + absl::Seconds(30);
  while (!shipper->status().connected) {
    if (absl::Now() > connect_deadline) {
      return absl::DeadlineExceededError("no handshake: " + shipper->status().last_error);
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  const testing::FaultProxyStats before = proxy->stats();
  const double cpu_start = CpuSeconds();
  const absl::Time start = absl::Now();
  shipper->SetPaused(false);
  if (absl::GetFlag(FLAGS_trace)) {
    // sent: records written to the stream; received: decoded by the receiver; durable: in the
    // inbound log; acked: acknowledged to the shipper.
    while (!shipper->WaitForAck(log->next_seq(), absl::Now() + absl::Milliseconds(100))) {
      const replication::ShipperStatus s = shipper->status();
      absl::PrintF("    %6.0f ms  sent %7d  received %7d  durable %7d  acked %7d  batches %d\n",
                   absl::ToDoubleMilliseconds(absl::Now() - start), s.shipped_next_seq - 1,
                   receiver->status().records, inbound->next_seq() - 1, s.acked_next_seq - 1,
                   s.batches);
    }
  }
  if (!shipper->WaitForAck(log->next_seq(), absl::Now() + absl::Minutes(10))) {
    return absl::DeadlineExceededError("not all records acknowledged: " +
                                       shipper->status().last_error);
  }
  Result result;
  result.took = absl::Now() - start;
  result.cpu_seconds = CpuSeconds() - cpu_start;
  const testing::FaultProxyStats after = proxy->stats();
  const replication::ShipperStatus s = shipper->status();
  shipper->Stop();
  server->Shutdown();

  if (inbound->next_seq() != log->next_seq()) {
    return absl::InternalError(
        absl::StrCat("inbound next_seq ", inbound->next_seq(), " != outbound ", log->next_seq()));
  }
  // Spot-check a few records end to end.
  for (uint64_t seq :
       {log->first_seq(), (log->first_seq() + log->next_seq()) / 2, log->next_seq() - 1}) {
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> a, log->Read(seq, 1, 1));
    FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> b, inbound->Read(seq, 1, 1));
    if (a.empty() || b.empty() || a[0].payload != b[0].payload) {
      return absl::InternalError(absl::StrCat("record ", seq, " differs"));
    }
  }
  result.payload_bytes = outbound.payload_bytes;
  result.blob_bytes = s.wire_bytes;
  result.proxy_to_target = after.bytes_to_target - before.bytes_to_target;
  result.proxy_to_client = after.bytes_to_client - before.bytes_to_client;
  result.batches = s.batches;
  result.max_inflight_batches = s.max_inflight_batches;
  result.max_inflight_bytes = s.max_inflight_bytes;
  result.inbound_commits = inbound->stats().group_commits;
  receiver.reset();
  inbound.reset();
  std::filesystem::remove_all(inbound_path);
  return result;
}

absl::StatusOr<Result> RunTcp(uint64_t bytes, absl::Duration one_way) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<TcpSink> sink, TcpSink::Start());
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<testing::FaultProxy> proxy,
                         testing::FaultProxy::Start("127.0.0.1", sink->port()));
  proxy->SetLatency(one_way);
  proxy->SetBandwidth(BandwidthBytes());
  Result result;
  const double cpu_start = CpuSeconds();
  FERRY_ASSIGN_OR_RETURN(result.took, CopyOverTcp(proxy->port(), bytes));
  result.cpu_seconds = CpuSeconds() - cpu_start;
  FERRY_RETURN_IF_ERROR(sink->status());
  const testing::FaultProxyStats stats = proxy->stats();
  result.payload_bytes = bytes;
  result.proxy_to_target = stats.bytes_to_target;
  result.proxy_to_client = stats.bytes_to_client;
  return result;
}

// The cost of each stage a batch passes through, one after the other on one thread, so that a
// stream rate far below 1 / (sum of the stages) points at waiting, not work.
absl::Status StageCosts(const Outbound& outbound, const std::string& dir) {
  const size_t batch_bytes = size_t(absl::GetFlag(FLAGS_batch_kb)) << 10;
  absl::PrintF("%-8s %10s %10s %10s %10s %10s   (ms per batch of %d KiB)\n", "zstd", "read",
               "encode", "decode", "append", "records", absl::GetFlag(FLAGS_batch_kb));
  for (int level : {0, 3}) {
    const std::string path = dir + "/stage-inbound";
    std::filesystem::remove_all(path);
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<DurableLog> inbound, DurableLog::Open({.path = path}));
    replication::BatchEncoder encoder(level);
    double read_ms = 0, encode_ms = 0, decode_ms = 0, append_ms = 0;
    int batches = 0;
    uint64_t records = 0;
    for (uint64_t seq = outbound.log->first_seq(); seq < outbound.log->next_seq(); ++batches) {
      absl::Time t = absl::Now();
      FERRY_ASSIGN_OR_RETURN(std::vector<LogRecord> r, outbound.log->Read(seq, 10000, batch_bytes));
      read_ms += absl::ToDoubleMilliseconds(absl::Now() - t);
      t = absl::Now();
      FERRY_ASSIGN_OR_RETURN(ferry::v1::Batch batch, encoder.Encode(r));
      encode_ms += absl::ToDoubleMilliseconds(absl::Now() - t);
      t = absl::Now();
      FERRY_ASSIGN_OR_RETURN(replication::DecodedBatch decoded,
                             replication::DecodeBatch(batch, {}));
      decode_ms += absl::ToDoubleMilliseconds(absl::Now() - t);
      t = absl::Now();
      AppendRequest request;
      request.records = std::move(decoded.records);
      FERRY_RETURN_IF_ERROR(inbound->Append(std::move(request)).status());
      append_ms += absl::ToDoubleMilliseconds(absl::Now() - t);
      seq += r.size();
      records += r.size();
    }
    absl::PrintF("%-8d %10.1f %10.1f %10.1f %10.1f %10.0f\n", level, read_ms / batches,
                 encode_ms / batches, decode_ms / batches, append_ms / batches,
                 double(records) / batches);
    inbound.reset();
    std::filesystem::remove_all(path);
  }
  return absl::OkStatus();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

absl::Status Main() {
  spdlog::set_level(spdlog::level::warn);
  const uint64_t n = absl::GetFlag(FLAGS_records);
  const int reps = std::max(1, absl::GetFlag(FLAGS_reps));
  const absl::Duration one_way = absl::Milliseconds(absl::GetFlag(FLAGS_latency_ms));
  const int rtt_ms = 2 * absl::GetFlag(FLAGS_latency_ms);

  std::unique_ptr<testing::TempDir> temp;
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    temp = std::make_unique<testing::TempDir>("ferry-stream-bench");
    dir = temp->path();
  }
  absl::PrintF("stream_bench: pre-filling %d TPC-B transactions in %s/outbound ...\n", n, dir);
  FERRY_ASSIGN_OR_RETURN(Outbound outbound,
                         Prefill(dir + "/outbound", n, absl::GetFlag(FLAGS_scale)));
  absl::PrintF("  %d records, %.1f MB payload, %.0f bytes/record (4 row changes each)\n",
               outbound.records, outbound.payload_bytes / 1e6,
               double(outbound.payload_bytes) / outbound.records);
  absl::PrintF(
      "  shipper window %d MiB, batch %d KiB; one-way latency %s (round trip %d ms); "
      "bandwidth %s\n\n",
      absl::GetFlag(FLAGS_window_mb), absl::GetFlag(FLAGS_batch_kb), absl::FormatDuration(one_way),
      rtt_ms,
      BandwidthBytes() == 0 ? "unlimited" : absl::StrFormat("%.1f MB/s", BandwidthBytes() / 1e6));

  if (absl::GetFlag(FLAGS_stage_costs)) return StageCosts(outbound, dir);

  const std::string slow = absl::StrCat(rtt_ms, "ms");
  std::vector<Config> configs = {
      {"ferry zstd0 0ms", false, 0, false}, {"ferry zstd0 " + slow, false, 0, true},
      {"ferry zstd3 0ms", false, 3, false}, {"ferry zstd3 " + slow, false, 3, true},
      {"tcp 0ms", true, 0, false},          {"tcp " + slow, true, 0, true},
  };
  // results[config][rep]
  std::map<std::string, std::vector<Result>> results;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<Config> order = configs;
    if (rep % 2 == 1) std::reverse(order.begin(), order.end());  // alternate the order
    for (const Config& c : order) {
      if (!absl::StrContains(c.name, absl::GetFlag(FLAGS_only))) continue;
      const absl::Duration latency = c.slow ? one_way : absl::ZeroDuration();
      absl::StatusOr<Result> r =
          c.tcp ? RunTcp(outbound.payload_bytes, latency)
                : RunFerry(outbound, absl::StrCat(dir, "/inbound"), c.level, latency);
      if (!r.ok()) return Annotate(r.status(), c.name);
      absl::PrintF("  rep %d  %-18s %8.3f s  %7.1f MB/s  cpu %.2f cores\n", rep + 1, c.name,
                   absl::ToDoubleSeconds(r->took),
                   r->payload_bytes / 1e6 / absl::ToDoubleSeconds(r->took),
                   r->cpu_seconds / absl::ToDoubleSeconds(r->took));
      std::fflush(stdout);
      results[c.name].push_back(*r);
    }
  }

  if (!absl::GetFlag(FLAGS_only).empty()) return absl::OkStatus();
  auto mbps = [](const Result& r) { return r.payload_bytes / 1e6 / absl::ToDoubleSeconds(r.took); };
  auto median_of = [&](const std::string& name, auto f) {
    std::vector<double> v;
    for (const Result& r : results[name]) v.push_back(f(r));
    return Median(v);
  };
  auto ratio = [&](const std::string& a, const std::string& b) {
    std::vector<double> v;
    for (int rep = 0; rep < reps; ++rep) v.push_back(mbps(results[a][rep]) / mbps(results[b][rep]));
    return Median(v);
  };

  absl::PrintF("\nmedian of %d repetitions, %d records of %.0f bytes\n", reps, n,
               double(outbound.payload_bytes) / n);
  absl::PrintF("%-18s %10s %9s %11s %11s %11s %8s %9s %8s %5s\n", "configuration", "records/s",
               "MB/s", "blob B/rec", "wire B/rec", "wire B/chg", "batches", "inflight", "commits",
               "cpu");
  for (const Config& c : configs) {
    auto med = [&](auto f) { return median_of(c.name, f); };
    const double rps = med([&](const Result& r) { return n / absl::ToDoubleSeconds(r.took); });
    const double wire = med([&](const Result& r) { return double(r.proxy_to_target) / n; });
    const double cpu =
        med([](const Result& r) { return r.cpu_seconds / absl::ToDoubleSeconds(r.took); });
    if (c.tcp) {
      absl::PrintF("%-18s %10.0f %9.1f %11s %11.2f %11.2f %8s %9s %8s %5.2f\n", c.name, rps,
                   med(mbps), "-", wire, wire / kChangesPerRecord, "-", "-", "-", cpu);
      continue;
    }
    absl::PrintF("%-18s %10.0f %9.1f %11.2f %11.2f %11.2f %8.0f %9.0f %8.0f %5.2f\n", c.name, rps,
                 med(mbps), med([&](const Result& r) { return double(r.blob_bytes) / n; }), wire,
                 wire / kChangesPerRecord, med([](const Result& r) { return double(r.batches); }),
                 med([](const Result& r) { return double(r.max_inflight_batches); }),
                 med([](const Result& r) { return double(r.inbound_commits); }), cpu);
  }
  absl::PrintF(
      "  MB/s: payload (uncompressed) bytes per second; blob B/rec: batch blobs per record;\n"
      "  wire B/rec: bytes the proxy forwarded to the receiver per record (gRPC/HTTP2 framing\n"
      "  included); wire B/chg: the same per row change (4 a record); inflight: most batches\n"
      "  unacknowledged at once; commits: inbound syncs; cpu: cores this process used.\n\n");

  struct Goal {
    std::string what, a, b;
    double goal;
  };
  const std::vector<Goal> goals = {
      {"ferry zstd0 " + slow + " / 0ms", "ferry zstd0 " + slow, "ferry zstd0 0ms", 0.90},
      {"ferry zstd3 " + slow + " / 0ms", "ferry zstd3 " + slow, "ferry zstd3 0ms", 0.90},
      {"tcp " + slow + " / 0ms", "tcp " + slow, "tcp 0ms", 0},
      {"ferry zstd0 / tcp, 0ms", "ferry zstd0 0ms", "tcp 0ms", 0.80},
      {"ferry zstd0 / tcp, " + slow, "ferry zstd0 " + slow, "tcp " + slow, 0.80},
      {"ferry zstd3 / tcp, 0ms", "ferry zstd3 0ms", "tcp 0ms", 0.80},
      {"ferry zstd3 / tcp, " + slow, "ferry zstd3 " + slow, "tcp " + slow, 0.80},
  };
  absl::PrintF("%-28s %8s %8s\n", "ratio (per repetition, median)", "value", "goal");
  for (const Goal& g : goals) {
    const double v = ratio(g.a, g.b);
    if (g.goal == 0) {
      absl::PrintF("%-28s %8.2f %8s\n", g.what, v, "-");
    } else {
      absl::PrintF("%-28s %8.2f %7.2f  %s\n", g.what, v, g.goal, v >= g.goal ? "met" : "MISSED");
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ferry::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = ferry::bench::Main();
  if (!status.ok()) {
    std::fprintf(stderr, "stream_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
