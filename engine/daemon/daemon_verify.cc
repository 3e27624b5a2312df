// Daemon::Verify: `ferryctl verify` on the primary (docs/verify.md). The coordinator runs in the
// caller's admin thread: the standby's verifier is reached on its replication listener with the
// replication token and TLS; the database's part comes from factories_.verify (ferryd).
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <climits>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine/base/status_macros.h"
#include "engine/daemon/daemon.h"
#include "engine/log/durable_log.h"
#include "engine/metrics/metrics.h"
#include "engine/region/role_controller.h"
#include "engine/replication/credentials.h"

namespace ferry {
namespace {

absl::StatusOr<std::string> ReadFileText(const std::string& path) {
  if (path.empty()) return std::string();
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

v1::VerifyTableResult ToProto(const consistency::TableDifferences& d) {
  v1::VerifyTableResult out;
  out.set_table(d.table);
  for (const auto& k : d.key_columns) out.add_key_columns(k);
  auto keys = [](const std::vector<consistency::Values>& from,
                 google::protobuf::RepeatedPtrField<v1::VerifyKey>* to) {
    for (const auto& key : from) {
      v1::VerifyKey* k = to->Add();
      for (const auto& v : key) k->add_values(v.value_or(""));
    }
  };
  keys(d.missing, out.mutable_missing());
  keys(d.extra, out.mutable_extra());
  keys(d.changed, out.mutable_changed());
  out.set_missing_count(d.missing_count);
  out.set_extra_count(d.extra_count);
  out.set_changed_count(d.changed_count);
  for (const auto& s : d.schema) out.add_schema(s);
  for (const auto& n : d.notes) out.add_notes(n);
  out.set_keyless(d.keyless);
  out.set_truncated(d.truncated);
  out.set_repaired_rows(d.repaired.applied);
  out.set_repair_skipped(d.repaired.skipped);
  out.set_repair_note(d.repair_note);
  return out;
}

}  // namespace

std::string Daemon::VerifyOperation() {
  absl::MutexLock lock(&verify_mu_);
  return verify_operation_;
}

absl::Status Daemon::Verify(const v1::VerifyRequest& request,
                            const std::function<void(const v1::VerifyEvent&)>& emit,
                            const std::function<bool()>& cancelled) {
  if (request.bucket() && !factories_.verify_bucket) {
    return absl::UnimplementedError(
        "verify --bucket: this region replicates no bucket (no objects: section)");
  }
  if (!request.bucket() && !factories_.verify) {
    return absl::UnimplementedError(
        factories_.verify_bucket
            ? "this region has no database (no postgres: section): use verify --bucket"
            : "this ferryd has no verifier");
  }
  const RegionRecord region = roles_->Get();
  if (region.role != Role::kPrimary || region.phase != RegionPhase::kReplicating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "region ", config_.region, " is ", std::string(RoleName(region.role)), " and ",
        std::string(RegionPhaseName(region.phase)), ": send verify to the replicating primary"));
  }
  if (roles_->paused()) {
    return absl::FailedPreconditionError(
        absl::StrCat("verify refused: replication is paused on ", config_.region,
                     " (the standby cannot reach the cut); ferryctl resume first"));
  }
  if (const absl::Status halted = request.bucket() ? absl::OkStatus() : CaptureHalted();
      !halted.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("verify refused: ", halted.message(), ": the standby cannot reach the cut"));
  }
  std::string operation;
  {
    absl::MutexLock lock(&verify_mu_);
    if (!verify_operation_.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("verify refused: ", verify_operation_, " runs"));
    }
    static std::atomic<uint64_t> verifies{0};
    operation = absl::StrCat("verify-", region.epoch, "-", absl::ToUnixMillis(absl::Now()), "-",
                             ++verifies);
    verify_operation_ = absl::StrCat(operation, ": taking the cut");
  }
  auto step = [&](const std::string& what) {
    {
      absl::MutexLock lock(&verify_mu_);
      verify_operation_ = absl::StrCat(operation, ": ", what);
    }
    v1::VerifyEvent event;
    event.set_operation(operation);
    event.set_step(what);
    emit(event);
  };
  auto finish = [&](absl::Status s) {
    absl::MutexLock lock(&verify_mu_);
    verify_operation_.clear();
    return s;
  };
  if (request.bucket()) {
    return finish(VerifyBucket(request, operation, step, emit, cancelled));
  }
  step("taking the cut");

  // The standby's verifier, on its replication listener.
  replication::TlsOptions tls;
  for (auto [field, path] : {std::pair{&tls.ca_pem, config_.security.tls.ca_file},
                             std::pair{&tls.cert_pem, config_.security.tls.cert_file},
                             std::pair{&tls.key_pem, config_.security.tls.key_file}}) {
    absl::StatusOr<std::string> pem = ReadFileText(path);
    if (!pem.ok()) return finish(pem.status());
    *field = *pem;
  }
  auto credentials = replication::ChannelCredentialsFor(tls);
  if (!credentials.ok()) return finish(credentials.status());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(config_.stream.max_message_bytes, INT_MAX)));
  consistency::GrpcStandbyPeer peer(
      grpc::CreateCustomChannel(config_.peer.replication.ToString(), *credentials, args),
      {.verify_id = operation, .token = config_.security.token.value});

  const absl::Time deadline = request.timeout_ms() == 0
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + absl::Milliseconds(request.timeout_ms());
  consistency::RegionVerifyOptions options;
  options.verify_id = operation;
  options.cut_timeout =
      std::min(absl::Seconds(30), std::max(absl::Seconds(1), deadline - absl::Now()));
  options.verify.compare.max_keys = request.max_keys() == 0 ? 1000 : request.max_keys();
  options.verify.repair = request.repair();
  options.verify.max_rows_per_second = request.max_rows_per_second();
  for (const std::string& t : request.tables()) {
    const size_t dot = t.find('.');
    options.verify.tables.push_back({t.substr(0, dot), t.substr(dot + 1)});
  }
  options.verify.compare.check_cancelled = [&]() -> absl::Status {
    if (cancelled()) return absl::CancelledError("verify cancelled by the caller");
    if (absl::Now() > deadline) return absl::DeadlineExceededError("verify: --timeout passed");
    return absl::OkStatus();
  };
  options.verify.on_step = step;
  options.verify.on_table = [&](const consistency::TableDifferences& d) {
    {
      absl::MutexLock lock(&verify_mu_);
      verify_operation_ = absl::StrCat(operation, ": compared ", d.table);
    }
    v1::VerifyEvent event;
    event.set_operation(operation);
    event.set_step(absl::StrCat("compared ", d.table));
    *event.mutable_table() = ToProto(d);
    emit(event);
  };
  spdlog::info("verify {}: starting", operation);
  absl::StatusOr<consistency::RegionVerifyResult> result =
      factories_.verify(config_, std::move(options), peer);
  Metrics* metrics = metrics_.load();
  if (!result.ok()) {
    if (metrics != nullptr) metrics->RecordVerify("error", 0, 0);
    v1::VerifyOutcome outcome;
    outcome.set_result("error");
    outcome.set_operation(operation);
    outcome.set_finished_at_us(absl::ToUnixMicros(absl::Now()));
    outcome.set_error(std::string(result.status().message()));
    dr_history_->RecordVerify(outcome);
    spdlog::warn("verify {}: {}", operation, result.status().ToString());
    return finish(Annotate(result.status(), operation));
  }
  const consistency::VerifyReport& report = result->report;
  v1::VerifyEvent last;
  last.set_operation(operation);
  last.set_step("done");
  v1::VerifySummary* summary = last.mutable_summary();
  summary->set_equal(report.differences() == 0);
  summary->set_differences(report.differences());
  summary->set_truncated(report.truncated());
  summary->set_rows_compared(report.primary_rows_read);
  summary->set_bytes_compared(report.primary_bytes_read);
  summary->set_wire_bytes(result->wire_bytes);
  summary->set_cut(std::to_string(result->cut_position));
  summary->set_standby_region(result->standby_region);
  if (result->recheck.has_value()) {
    summary->set_rechecked(true);
    summary->set_recheck_equal(result->recheck->differences() == 0);
    summary->set_recheck_differences(result->recheck->differences());
  }
  if (metrics != nullptr) {
    metrics->RecordVerify(report.differences() == 0 ? "equal" : "different",
                          report.primary_rows_read, report.primary_bytes_read);
  }
  {
    v1::VerifyOutcome outcome;
    // A repair rechecks the tables it wrote; the others keep the differences found.
    uint64_t remaining = 0;
    for (const auto& t : report.tables) {
      uint64_t left = t.differences();
      if (result->recheck.has_value()) {
        for (const auto& again : result->recheck->tables) {
          if (again.table == t.table) left = again.differences();
        }
      }
      remaining += left;
    }
    outcome.set_result(report.differences() == 0 ? "equal"
                       : remaining == 0          ? "repaired"
                                                 : "different");
    outcome.set_operation(operation);
    outcome.set_finished_at_us(absl::ToUnixMicros(absl::Now()));
    outcome.set_differences(report.differences());
    outcome.set_remaining(remaining);
    dr_history_->RecordVerify(outcome);
  }
  spdlog::info("verify {}: {} differences over {} tables, {} rows", operation, report.differences(),
               report.tables.size(), report.primary_rows_read);
  emit(last);
  return finish(absl::OkStatus());
}

}  // namespace ferry
