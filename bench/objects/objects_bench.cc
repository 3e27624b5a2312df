// objects_bench: Ferry's object apply step against rclone, both copying one bucket into an
// empty one on the same radosgw (tests/support/radosgw.h), alternating, the same objects each
// time, taking turns going first. Ferry: EventBatchApplier over one "s3.object" event per key (what
// the standby does with a backfill's events: HEAD both sides, GET, PUT or streamed multipart).
// rclone: `rclone sync` with as many transfers as Ferry's parallelism. Only ratios count on this
// machine (shared, noisy): each repetition runs both, and the median of the per-repetition ratios
// is reported.
//
// Usage: objects_bench [--objects N] [--size BYTES] [--big N] [--big-size BYTES]
//                      [--parallelism P] [--reps R] [--rclone-streamed 0|1]
//                      [--part-size BYTES]
// Both buckets are on one gateway, so rclone copies server-side (CopyObject: no body leaves
// radosgw) unless --rclone-streamed 1 disables that (`--disable Copy`): then it GETs and PUTs
// each body, as it must between two S3 services that do not share credentials.
// Needs radosgw, ceph-mon, ceph-osd and rclone (scripts/install-deps.sh).
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connectors/s3/bucket_compare.h"
#include "connectors/s3/bucket_source.h"
#include "connectors/s3/event_batch_applier.h"
#include "tests/support/child_process.h"
#include "tests/support/radosgw.h"
#include "tests/support/temp_dir.h"

namespace {

using ferry::s3::S3Client;

struct Args {
  int objects = 300;
  uint64_t size = 64 << 10;
  int big = 2;
  uint64_t big_size = uint64_t{24} << 20;
  int parallelism = 4;
  int reps = 3;
  bool rclone_streamed = false;
  uint64_t part_size = uint64_t{8} << 20;  // ObjectApplierOptions' default
};

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    uint64_t v = 0;
    if (!absl::SimpleAtoi(argv[i + 1], &v)) return false;
    if (k == "--objects")
      a->objects = static_cast<int>(v);
    else if (k == "--size")
      a->size = v;
    else if (k == "--big")
      a->big = static_cast<int>(v);
    else if (k == "--big-size")
      a->big_size = v;
    else if (k == "--parallelism")
      a->parallelism = static_cast<int>(v);
    else if (k == "--reps")
      a->reps = static_cast<int>(v);
    else if (k == "--rclone-streamed")
      a->rclone_streamed = v != 0;
    else if (k == "--part-size")
      a->part_size = v;
    else
      return false;
  }
  return argc % 2 == 1 && a->reps >= 1 && a->parallelism >= 1 && a->objects + a->big > 0 &&
         a->part_size >= (uint64_t{5} << 20);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!Parse(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: %s [--objects N] [--size B] [--big N] [--big-size B] "
                 "[--parallelism P] [--reps R] [--rclone-streamed 0|1] "
                 "[--part-size B>=5MiB]\n",
                 argv[0]);
    return 2;
  }
  ferry::testing::TempDir dir("ferry-objects-bench");
  // memstore is RAM: the source and two copies (the small objects of every repetition's), with
  // a margin for radosgw's metadata.
  const uint64_t data_bytes =
      args.objects * args.size * (1 + 2 * args.reps) + args.big * args.big_size * 3;
  auto rgw = ferry::testing::RadosGateway::Start(
      {.memstore_bytes = std::max(uint64_t{2} << 30, data_bytes * 5 / 4 + (uint64_t{1} << 30))});
  if (!rgw.ok()) {
    std::fprintf(stderr, "%s\n", rgw.status().ToString().c_str());
    return 1;
  }
  auto opened = S3Client::Open(
      {.endpoint = (*rgw)->endpoint(),
       .credentials = {.access_key = (*rgw)->access_key(), .secret_key = (*rgw)->secret_key()}});
  if (!opened.ok()) return 1;
  S3Client& s3 = **opened;
  if (!s3.CreateBucket("bench-src").ok()) return 1;
  uint64_t total_bytes = 0;
  std::vector<std::string> keys;
  std::string body(args.size, 'x');
  for (int i = 0; i < args.objects; ++i) {
    keys.push_back(absl::StrCat("small/", i));
    body[0] = static_cast<char>(i);
    if (!s3.PutObject("bench-src", keys.back(), body, {}).ok()) return 1;
    total_bytes += body.size();
  }
  std::string big(args.big_size, 'B');
  for (int i = 0; i < args.big; ++i) {
    keys.push_back(absl::StrCat("big/", i));
    big[0] = static_cast<char>(i);
    if (!s3.PutObject("bench-src", keys.back(), big, {}).ok()) return 1;
    total_bytes += big.size();
  }
  std::vector<ferry::v1::SourceEvent> events;
  for (const std::string& k : keys) {
    ferry::s3::ObjectEvent e;
    e.set_format(1);
    e.set_bucket("bench-src");
    e.set_key(k);
    e.set_kind(ferry::s3::ObjectEvent::PUT);
    ferry::v1::SourceEvent se;
    se.set_type(ferry::s3::kObjectEventType);
    e.SerializeToString(se.mutable_body());
    events.push_back(std::move(se));
  }
  const double mb = static_cast<double>(total_bytes) / 1e6;
  std::printf(
      "%zu objects, %.1f MB (%d of %llu B, %d of %llu B), parallelism %d, Ferry's parts %llu B, "
      "rclone %s\n",
      keys.size(), mb, args.objects, static_cast<unsigned long long>(args.size), args.big,
      static_cast<unsigned long long>(args.big_size), args.parallelism,
      static_cast<unsigned long long>(args.part_size),
      args.rclone_streamed ? "streamed (--disable Copy)" : "server-side copy");
  std::printf("%-4s %10s %11s %10s %10s %11s %10s %7s\n", "rep", "ferry s", "ferry obj/s",
              "ferry MB/s", "rclone s", "rclone obj/s", "rclone MB/s", "ratio");
  std::vector<double> ratios, ferry_mbs, rclone_mbs;
  for (int rep = 1; rep <= args.reps; ++rep) {
    const std::string ferry_dst = absl::StrCat("bench-ferry-", rep);
    const std::string rclone_dst = absl::StrCat("bench-rclone-", rep);
    if (!s3.CreateBucket(ferry_dst).ok() || !s3.CreateBucket(rclone_dst).ok()) return 1;

    // The two copies take turns going first (the gateway's memory is fresher for the first).
    double ferry_s = 0;
    auto copy_with_ferry = [&]() -> bool {
      auto applier = ferry::s3::ObjectApplier::Create({.source = &s3,
                                                       .source_bucket = "bench-src",
                                                       .target = &s3,
                                                       .target_bucket = ferry_dst,
                                                       .origin_region = "east",
                                                       .part_size = args.part_size});
      if (!applier.ok()) return false;
      ferry::s3::EventBatchApplier batch(applier->get(), "bench-src", args.parallelism);
      const absl::Time start = absl::Now();
      auto applied = batch.Apply(events);
      ferry_s = absl::ToDoubleSeconds(absl::Now() - start);
      if (!applied.ok()) {
        std::fprintf(stderr, "ferry: %s\n", applied.status().ToString().c_str());
        return false;
      }
      return true;
    };
    double rclone_s = 0;
    auto copy_with_rclone = [&]() -> bool {
      const std::string remote = absl::StrCat(
          ":s3,provider=Ceph,access_key_id=", (*rgw)->access_key(),
          ",secret_access_key=", (*rgw)->secret_key(), ",endpoint='", (*rgw)->endpoint(), "':");
      const absl::Time start = absl::Now();
      // rclone's AWS SDK refuses to start when AWS_CA_BUNDLE is set (as it is on some machines)
      // with a plain-HTTP endpoint: "LoadCustomCABundleError".
      std::vector<std::string> rclone = {"env", "-u", "AWS_CA_BUNDLE", "rclone", "sync"};
      rclone.insert(rclone.end(), {remote + "bench-src", remote + rclone_dst, "--transfers",
                                   absl::StrCat(args.parallelism), "--checkers",
                                   absl::StrCat(args.parallelism), "--config", "/dev/null"});
      if (args.rclone_streamed) rclone.insert(rclone.end(), {"--disable", "Copy"});
      auto child = ferry::testing::ChildProcess::Spawn(rclone, dir.File("rclone.log"));
      if (!child.ok()) {
        std::fprintf(stderr, "rclone: %s\n", child.status().ToString().c_str());
        return false;
      }
      int status = (*child)->Wait();
      rclone_s = absl::ToDoubleSeconds(absl::Now() - start);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "rclone failed (%d), see %s\n", status,
                     dir.File("rclone.log").c_str());
        dir.Keep();
        return false;
      }
      return true;
    };
    const bool ferry_first = rep % 2 == 1;
    if (!(ferry_first ? copy_with_ferry() : copy_with_rclone())) return 1;
    if (!(ferry_first ? copy_with_rclone() : copy_with_ferry())) return 1;
    for (const std::string& dst : {ferry_dst, rclone_dst}) {
      auto cmp = ferry::s3::CompareBuckets(s3, "bench-src", s3, dst,
                                           {.compare_bodies = false, .max_shown = keys.size()});
      // rclone's uploads (not its server-side copies) add its own mtime to the user metadata.
      const bool only_rclone_mtime =
          cmp.ok() && dst == rclone_dst && cmp->differences == cmp->shown.size() &&
          std::all_of(cmp->shown.begin(), cmp->shown.end(), [](const std::string& d) {
            return absl::EndsWith(d, "user metadata differs");
          });
      if (!cmp.ok() || (!cmp->equal() && !only_rclone_mtime)) {
        std::fprintf(stderr, "%s is not equal to the source: %s\n", dst.c_str(),
                     !cmp.ok() ? cmp.status().ToString().c_str() : cmp->shown[0].c_str());
        return 1;
      }
    }
    const double n = static_cast<double>(keys.size());
    std::printf("%-4d %10.2f %11.1f %10.1f %10.2f %11.1f %10.1f %7.2f\n", rep, ferry_s, n / ferry_s,
                mb / ferry_s, rclone_s, n / rclone_s, mb / rclone_s, rclone_s / ferry_s);
    // The copies' large objects go (and radosgw's garbage collector frees their parts at once),
    // so that memstore holds the source and two copies whatever the repetitions.
    for (const std::string& dst : {ferry_dst, rclone_dst}) {
      for (int i = 0; i < args.big; ++i) {
        if (!s3.DeleteObject(dst, absl::StrCat("big/", i)).ok()) return 1;
      }
    }
    if (args.big > 0 && !(*rgw)->Admin({"gc", "process", "--include-all"}).ok()) return 1;
    ratios.push_back(rclone_s / ferry_s);
    ferry_mbs.push_back(mb / ferry_s);
    rclone_mbs.push_back(mb / rclone_s);
  }
  const double n = static_cast<double>(keys.size());
  std::printf(
      "median: ferry %.1f obj/s %.1f MB/s, rclone %.1f obj/s %.1f MB/s, "
      "rclone time / ferry time %.2f\n",
      n * Median(ferry_mbs) / mb, Median(ferry_mbs), n * Median(rclone_mbs) / mb,
      Median(rclone_mbs), Median(ratios));
  return 0;
}
