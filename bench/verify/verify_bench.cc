// verify_bench: the verifier's speed on an identical pgbench table, against what an operator
// would otherwise run, measured in the same run on the same machine (docs/verify.md, bench/
// verify/README.md):
//   - count(*) of the table on each side (the floor: a scan that hashes nothing);
//   - a data-diff style in-database checksum on each side, per segment of 100,000 keys:
//     count(*) and sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint);
//   - ferry's verify: both sides scanned at once through the real exchange (the standby's
//     VerifyPeerService over gRPC on loopback, the primary's cut by a temporary slot).
// Both sides of each method run at once (two clusters on this machine), as they would in two
// regions. Prints rows/s per side for each and the ratios, and the verify's bytes on the wire.
//
//   verify_bench [--scale N] [--differences N] [--verify-runs N]
//     --scale: pgbench scale (100,000 rows each; default 5; the goal size is 100)
//     --differences: then change N rows on the standby and verify again (bytes on the wire)
//     --verify-runs: run the verify N times, report the fastest (for a profiler)
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "consistency/grpc/verify_service.h"
#include "consistency/postgres/region_verify.h"
#include "engine/base/status_macros.h"
#include "tests/support/child_process.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";

class NoBarrier : public consistency::CutBarrier {
 public:
  absl::Status Freeze() override { return absl::OkStatus(); }
  void SetCut(uint64_t) override {}
  absl::Status WaitForCut(absl::Duration) override { return absl::OkStatus(); }
  void Release() override {}
  uint64_t applied_seq() override { return 0; }
};

absl::Status RunTool(const std::vector<std::string>& argv, const std::string& output) {
  FERRY_ASSIGN_OR_RETURN(auto child, testing::ChildProcess::Spawn(argv, output, {}));
  int status = child->Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed; output in ", output));
  }
  return absl::OkStatus();
}

// Runs `per_side` on both clusters at once; returns the slower side's seconds.
template <typename F>
absl::StatusOr<double> BothSides(testing::PgCluster& a, testing::PgCluster& b, F per_side) {
  absl::Status sa, sb;
  const absl::Time start = absl::Now();
  std::thread ta([&] { sa = per_side(a); });
  std::thread tb([&] { sb = per_side(b); });
  ta.join();
  tb.join();
  FERRY_RETURN_IF_ERROR(sa);
  FERRY_RETURN_IF_ERROR(sb);
  return absl::ToDoubleSeconds(absl::Now() - start);
}

absl::Status Main(int scale, int differences, int verify_runs) {
  const int64_t rows = int64_t{100000} * scale;
  std::printf("verify_bench: pgbench scale %d (%lld rows in pgbench_accounts)\n", scale,
              static_cast<long long>(rows));
  testing::TempDir work("ferry-verify-bench-out");
  FERRY_ASSIGN_OR_RETURN(auto primary,
                         testing::PgCluster::Start({.extra_config = {"shared_buffers = 512MB"}}));
  FERRY_ASSIGN_OR_RETURN(auto standby,
                         testing::PgCluster::Start({.extra_config = {"shared_buffers = 512MB"}}));
  for (auto* pg : {primary.get(), standby.get()}) {
    FERRY_RETURN_IF_ERROR(RunTool(
        {absl::StrCat(kBinDir, "/pgbench"), "-h", "127.0.0.1", "-p", absl::StrCat(pg->port()), "-U",
         "postgres", "-i", "-q", "-s", absl::StrCat(scale), "app"},
        work.File(absl::StrCat("init_", pg->port(), ".log"))));
    FERRY_RETURN_IF_ERROR(pg->Exec("VACUUM ANALYZE pgbench_accounts"));
  }
  auto count = [&](testing::PgCluster& pg) {
    return pg.QueryValue("SELECT count(*) FROM pgbench_accounts").status();
  };
  // Warm both caches once (not timed).
  FERRY_RETURN_IF_ERROR(BothSides(*primary, *standby, count).status());

  FERRY_ASSIGN_OR_RETURN(double count_s, BothSides(*primary, *standby, count));
  auto checksum = [&](testing::PgCluster& pg) -> absl::Status {
    for (int64_t lo = 1; lo <= rows; lo += 100000) {
      FERRY_RETURN_IF_ERROR(
          pg.Query(absl::StrCat("SELECT count(*), sum(('x' || substr(md5(t::text), 1, 15))::"
                                "bit(60)::bigint) FROM pgbench_accounts t WHERE aid >= ",
                                lo, " AND aid < ", lo + 100000))
              .status());
    }
    return absl::OkStatus();
  };
  FERRY_ASSIGN_OR_RETURN(double checksum_s, BothSides(*primary, *standby, checksum));

  // The verify through the real exchange.
  NoBarrier barrier;
  consistency::VerifyServiceOptions so;
  so.region = "standby";
  so.barrier = &barrier;
  const std::string standby_dsn = standby->dsn();
  so.open_peer = [standby_dsn]() -> absl::StatusOr<std::unique_ptr<consistency::StandbyPeer>> {
    FERRY_ASSIGN_OR_RETURN(auto session,
                           consistency::VerifySession::Open(standby_dsn, std::nullopt));
    return std::unique_ptr<consistency::StandbyPeer>(
        new consistency::LocalStandbyPeer(std::move(session)));
  };
  consistency::VerifyPeerService service(so);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (server == nullptr) return absl::InternalError("no gRPC server");
  consistency::GrpcStandbyPeer peer(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()),
      {.verify_id = "bench"});
  consistency::RegionVerifyOptions options;
  options.primary_dsn = primary->dsn();
  options.verify_id = "bench";
  options.verify.tables = {{"public", "pgbench_accounts"}};
  // --verify-runs N: the verify N times (for a profiler; the figure is the fastest run).
  double verify_s = 0;
  consistency::RegionVerifyResult result;
  for (int run = 0; run < verify_runs; ++run) {
    std::fprintf(stderr, "verify_bench: verify run %d starts\n", run + 1);
    const absl::Time start = absl::Now();
    FERRY_ASSIGN_OR_RETURN(result, consistency::RunRegionVerify(options, peer));
    const double s = absl::ToDoubleSeconds(absl::Now() - start);
    verify_s = run == 0 ? s : std::min(verify_s, s);
  }
  if (result.report.differences() != 0) return absl::InternalError("the tables differ?");
  // --differences N: N rows changed on the standby (spread over the table), verified again:
  // the bytes on the wire grow with the differences.
  uint64_t diff_wire = 0;
  uint64_t diff_found = 0;
  if (differences > 0) {
    FERRY_RETURN_IF_ERROR(standby->Exec(absl::StrCat(
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % ", rows / differences,
        " = 0 AND aid <= ", static_cast<int64_t>(differences) * (rows / differences))));
    consistency::GrpcStandbyPeer diff_peer(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()),
        {.verify_id = "bench-diff"});
    options.verify_id = "bench-diff";
    FERRY_ASSIGN_OR_RETURN(consistency::RegionVerifyResult diff,
                           consistency::RunRegionVerify(options, diff_peer));
    diff_wire = diff.wire_bytes;
    diff_found = diff.report.differences();
  }
  server->Shutdown();

  auto rate = [&](double s) { return static_cast<double>(rows) / s; };
  std::printf("%-28s %10s %14s\n", "method (both sides at once)", "seconds", "rows/s per side");
  std::printf("%-28s %10.2f %14.0f\n", "count(*)", count_s, rate(count_s));
  std::printf("%-28s %10.2f %14.0f\n", "md5 checksum per 100k keys", checksum_s, rate(checksum_s));
  std::printf("%-28s %10.2f %14.0f\n", "ferry verify", verify_s, rate(verify_s));
  std::printf("verify / checksum: %.2fx   verify / count(*): %.2fx\n", checksum_s / verify_s,
              count_s / verify_s);
  std::printf("verify wire bytes: %llu (rows compared on the primary: %llu)\n",
              static_cast<unsigned long long>(result.wire_bytes),
              static_cast<unsigned long long>(result.report.primary_rows_read));
  if (differences > 0) {
    std::printf("with %d rows changed on the standby: %llu differences found, %llu wire bytes\n",
                differences, static_cast<unsigned long long>(diff_found),
                static_cast<unsigned long long>(diff_wire));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ferry

int main(int argc, char** argv) {
  int scale = 5;
  int differences = 0;
  int verify_runs = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--scale" && i + 1 < argc) {
      scale = std::atoi(argv[++i]);
    } else if (a == "--differences" && i + 1 < argc) {
      differences = std::atoi(argv[++i]);
    } else if (a == "--verify-runs" && i + 1 < argc) {
      verify_runs = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: verify_bench [--scale N] [--differences N] [--verify-runs N]\n");
      return 1;
    }
  }
  if (differences < 0 || differences > 100000 || verify_runs < 1 || verify_runs > 100) {
    std::fprintf(stderr, "verify_bench: --differences in [0, 100000], --verify-runs in [1, 100]\n");
    return 1;
  }
  if (scale < 1 || scale > 1000) {
    std::fprintf(stderr, "verify_bench: --scale between 1 and 1000\n");
    return 1;
  }
  absl::Status s = ferry::Main(scale, differences, verify_runs);
  if (!s.ok()) {
    std::fprintf(stderr, "verify_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
