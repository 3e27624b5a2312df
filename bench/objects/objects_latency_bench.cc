// objects_latency_bench: how soon a new object on the primary is readable in the standby's
// bucket (issue #18's goal: p99 under 5 s at 50 objects/s; S3 Replication Time Control promises
// 15 minutes). Two ferryd on this machine (tests/e2e/two_regions.h), east primary and west
// standby, each with its bucket on one radosgw (tests/e2e/bucket_pair.h), bucket-only unless
// --postgres 1; radosgw pushes east's notifications to east's webhook. --writers threads PUT
// new objects into east's bucket at a steady --rate for --seconds (the i-th due at i / rate);
// another HEADs each one in west's bucket until it shows the same ETag and size. An object's
// latency runs from its PUT's acknowledgement to the HEAD that first sees it, so it is
// overstated by at most one polling pass (every pending object HEADed once, then 5 ms asleep).
// Objects not seen --drain seconds after the last PUT are lost. East's acknowledgement times
// are printed too: radosgw pushes the notification to the webhook before it answers the PUT.
//
//   ./build/bench/objects_latency_bench [--rate 50] [--seconds 60] [--size 16384]
//                                       [--writers 8] [--drain 60] [--postgres 0]
//                                       [--big-object BYTES]
// With --big-object, one object of that size follows the latency phase, and west's ferryd's
// peak resident memory is printed once west has it (#18: 1 GB under 256 MB).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/support/flags.h"
#include "tests/e2e/bucket_pair.h"
#include "tests/e2e/two_regions.h"

namespace {

using ferry::bench::Flag;
using ferry::testing::BucketPair;
using ferry::testing::Region;
using ferry::testing::TwoRegions;

// An object whose PUT east acknowledged.
struct Sent {
  std::string key;
  std::string etag;
  absl::Time acked;
  double put_seconds;  // how long east took to acknowledge it
};

// The PUTs acknowledged so far, handed from the writer threads to the watcher.
class Ledger {
 public:
  void Add(Sent s) {
    absl::MutexLock lock(&mu_);
    sent_.push_back(std::move(s));
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = absl::Now();
  }
  // Moves the entries added since the last call into `out`; returns when the writers closed
  // the ledger (absl::InfiniteFuture() while they write).
  absl::Time TakeNew(std::vector<Sent>* out) {
    absl::MutexLock lock(&mu_);
    for (Sent& s : sent_) out->push_back(std::move(s));
    sent_.clear();
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Sent> sent_ ABSL_GUARDED_BY(mu_);
  absl::Time closed_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

constexpr uint64_t kAppPart = uint64_t{16} << 20;  // the application's part size

struct Args {
  double rate, seconds, drain;
  int writers;
  uint64_t size, big_object;
  bool postgres;
};

bool Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "objects_latency_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  return false;
}

// Phase 1: the bucket pair, both ferryd and the push of east's notices; returns once an object
// put on east has reached west (the pair replicates).
bool StartPair(const Args& args, std::unique_ptr<BucketPair>* buckets,
               std::unique_ptr<TwoRegions>* regions) {
  // memstore is RAM: the new objects twice, and the large object twice with a margin.
  auto b = BucketPair::Start({.memstore_bytes = (uint64_t{2} << 30) + args.big_object * 5 / 2});
  if (!b.ok()) return Fail("radosgw", b.status());
  *buckets = std::move(*b);
  auto r = TwoRegions::Start((*buckets)->RegionOptions(/*without_postgres=*/!args.postgres));
  if (!r.ok()) return Fail("regions", r.status());
  *regions = std::move(*r);
  if (absl::Status s = (*buckets)->PushTo(Region::kEast); !s.ok()) return Fail("push", s);
  auto put = (*buckets)->s3().PutObject(BucketPair::Bucket(Region::kEast), "warm-up", "w", {});
  if (!put.ok()) return Fail("warm-up PUT", put.status());
  if (absl::Status s = (*buckets)->WaitForEqual(absl::Seconds(60)); !s.ok()) {
    std::fprintf(stderr, "%s", (*regions)->BothLogTails().c_str());
    return Fail("warm-up", s);
  }
  return true;
}

// Phase 2: PUTs rate x seconds new objects into east's bucket from `writers` threads, the i-th
// due at start + i / rate (so the rate holds while a PUT takes less than writers / rate), then
// closes the ledger; returns the rate achieved (lower than asked when PUTs fall behind).
double PutSteadily(const Args& args, ferry::s3::S3Client& s3, Ledger& ledger) {
  const int count = static_cast<int>(args.rate * args.seconds);
  std::atomic<int> next{0}, puts{0};
  const absl::Time start = absl::Now();
  std::vector<std::thread> writers;
  for (int w = 0; w < args.writers; ++w) {
    writers.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        absl::SleepFor(start + absl::Seconds(i / args.rate) - absl::Now());
        const std::string key = absl::StrCat("new/", i);
        std::string body = key;  // each body (and ETag) its own
        body.resize(args.size, 'o');
        const absl::Time put_start = absl::Now();
        auto put = s3.PutObject(BucketPair::Bucket(Region::kEast), key, body, {});
        if (!put.ok()) {
          std::fprintf(stderr, "PUT %s: %s\n", key.c_str(), put.status().ToString().c_str());
          continue;
        }
        const absl::Time acked = absl::Now();
        ledger.Add({key, put->etag, acked, absl::ToDoubleSeconds(acked - put_start)});
        ++puts;
      }
    });
  }
  for (std::thread& t : writers) t.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  ledger.Close();
  return puts / elapsed;
}

// What the watcher saw: each object's latency to west and east's acknowledgement time, in
// seconds, and the objects west never showed.
struct Observed {
  std::vector<double> latencies, put_seconds;
  size_t lost = 0;
};

// Phase 3 (watcher): HEADs each pending object in west's bucket until it has the acknowledged
// ETag and size; objects still not there `drain` seconds after the ledger closed are lost.
Observed WatchStandby(const Args& args, ferry::s3::S3Client& s3, Ledger& ledger) {
  Observed seen;
  std::vector<Sent> pending;
  while (true) {
    const size_t known = pending.size();
    const absl::Time closed = ledger.TakeNew(&pending);
    for (size_t i = known; i < pending.size(); ++i) {
      seen.put_seconds.push_back(pending[i].put_seconds);
    }
    if (pending.empty() && closed != absl::InfiniteFuture()) break;
    if (absl::Now() > closed + absl::Seconds(args.drain)) break;
    std::vector<Sent> still;
    for (Sent& s : pending) {
      auto head = s3.HeadObject(BucketPair::Bucket(Region::kWest), s.key);
      if (head.ok() && head->etag == s.etag && head->size == args.size) {
        seen.latencies.push_back(absl::ToDoubleSeconds(absl::Now() - s.acked));
      } else {
        still.push_back(std::move(s));
      }
    }
    pending = std::move(still);
    absl::SleepFor(absl::Milliseconds(5));
  }
  seen.lost = pending.size();
  return seen;
}

// Phase 5 (--big-object): one object of that size PUT on east in 16 MiB parts; once west has
// it (within 10 minutes), west's ferryd's peak resident memory in MiB (VmHWM: over its whole
// life, the latency phase's too).
absl::StatusOr<double> LargeObjectPeakRss(const Args& args, BucketPair& b, TwoRegions& regions) {
  ferry::s3::S3Client& s3 = b.s3();
  const char* east = BucketPair::Bucket(Region::kEast);
  const std::string key = "large object";
  auto id = s3.CreateMultipartUpload(east, key, {});
  if (!id.ok()) return id.status();
  std::vector<ferry::s3::CompletedPart> parts;
  for (uint64_t off = 0; off < args.big_object; off += kAppPart) {
    std::string part(std::min(kAppPart, args.big_object - off), static_cast<char>(off >> 24));
    auto etag = s3.UploadPart(east, key, *id, static_cast<int>(parts.size() + 1), part);
    if (!etag.ok()) return etag.status();
    parts.push_back({static_cast<int>(parts.size() + 1), *etag});
  }
  auto put = s3.CompleteMultipartUpload(east, key, *id, parts);
  if (!put.ok()) return put.status();
  for (const absl::Time deadline = absl::Now() + absl::Minutes(10); absl::Now() < deadline;) {
    auto head = s3.HeadObject(BucketPair::Bucket(Region::kWest), key);
    if (head.ok() && head->size == args.big_object) {
      std::ifstream status(absl::StrCat("/proc/", regions.pid(Region::kWest), "/status"));
      std::string line;
      while (std::getline(status, line)) {
        if (absl::StartsWith(line, "VmHWM:")) return std::atof(line.c_str() + 6) / 1024;
      }
      return absl::InternalError("no VmHWM in west's /proc/PID/status");
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the large object never reached west\n", regions.LogTail(Region::kWest)));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Phase 4: the figures.
void Report(const Args& args, double achieved_rate, const Observed& seen) {
  std::printf(
      "%s regions, %llu-byte objects, asked %.0f/s for %.0f s from %d writers, "
      "achieved %.1f/s\n",
      args.postgres ? "postgres+bucket" : "bucket-only", static_cast<unsigned long long>(args.size),
      args.rate, args.seconds, args.writers, achieved_rate);
  std::printf("%-22s %8s %9s %9s %9s %6s\n", "", "objects", "p50 s", "p99 s", "max s", "lost");
  const std::vector<double>& l = seen.latencies;
  std::printf("%-22s %8zu %9.3f %9.3f %9.3f %6zu\n", "east ack -> on west", l.size(),
              Percentile(l, 0.5), Percentile(l, 0.99), Percentile(l, 1.0), seen.lost);
  const std::vector<double>& p = seen.put_seconds;
  std::printf("%-22s %8zu %9.3f %9.3f %9.3f\n", "PUT on east (ack)", p.size(), Percentile(p, 0.5),
              Percentile(p, 0.99), Percentile(p, 1.0));
  std::printf("p99 / goal (5 s): %.3f\n", Percentile(l, 0.99) / 5.0);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args{.rate = Flag(argc, argv, "rate", 50),
                  .seconds = Flag(argc, argv, "seconds", 60),
                  .drain = Flag(argc, argv, "drain", 60),
                  .writers = static_cast<int>(Flag(argc, argv, "writers", 8)),
                  .size = static_cast<uint64_t>(Flag(argc, argv, "size", 16384)),
                  .big_object = static_cast<uint64_t>(Flag(argc, argv, "big-object", 0)),
                  .postgres = Flag(argc, argv, "postgres", 0) != 0};
  if (args.rate <= 0 || args.seconds <= 0 || args.size == 0 || args.writers <= 0) {
    std::fprintf(stderr, "--rate, --seconds, --size and --writers must be positive\n");
    return 2;
  }
  std::unique_ptr<BucketPair> buckets;
  std::unique_ptr<TwoRegions> regions;
  if (!StartPair(args, &buckets, &regions)) return 1;
  Ledger ledger;
  double achieved = 0;
  std::thread writing([&] { achieved = PutSteadily(args, buckets->s3(), ledger); });
  const Observed seen = WatchStandby(args, buckets->s3(), ledger);
  writing.join();
  Report(args, achieved, seen);
  if (args.big_object > 0) {
    const absl::StatusOr<double> peak_mib = LargeObjectPeakRss(args, *buckets, *regions);
    if (!peak_mib.ok()) {
      Fail("large object", peak_mib.status());
      return 1;
    }
    std::printf("large object %llu MiB: west ferryd peak RSS %.0f MiB (goal 256 MB: %.2f)\n",
                static_cast<unsigned long long>(args.big_object >> 20), *peak_mib,
                *peak_mib * 1048576 / 256e6);
  }
  if (seen.lost > 0) std::fprintf(stderr, "%s", regions->BothLogTails().c_str());
  return seen.lost == 0 ? 0 : 1;
}
