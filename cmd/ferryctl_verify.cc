#include "cmd/ferryctl_verify.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/base/json_text.h"

namespace ferry::ctl {
namespace {

std::string Json(const std::string& text) { return JsonString(text); }

// A key as {"column": "value", ...}.
std::string KeyJson(const v1::VerifyTableResult& t, const v1::VerifyKey& key) {
  std::vector<std::string> fields;
  for (int i = 0; i < key.values_size(); ++i) {
    const std::string name = i < t.key_columns_size() ? t.key_columns(i) : absl::StrCat("k", i);
    fields.push_back(absl::StrCat(Json(name), ": ", Json(key.values(i))));
  }
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

std::string KeysJson(const v1::VerifyTableResult& t,
                     const google::protobuf::RepeatedPtrField<v1::VerifyKey>& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) out.push_back(KeyJson(t, k));
  return absl::StrCat("[", absl::StrJoin(out, ", "), "]");
}

std::string KeyText(const v1::VerifyTableResult& t, const v1::VerifyKey& key) {
  std::vector<std::string> parts;
  for (int i = 0; i < key.values_size(); ++i) {
    parts.push_back(
        absl::StrCat(i < t.key_columns_size() ? t.key_columns(i) : "?", "=", key.values(i)));
  }
  return absl::StrJoin(parts, ", ");
}

bool TableEqual(const v1::VerifyTableResult& t) {
  return t.missing_count() + t.extra_count() + t.changed_count() == 0 && t.schema_size() == 0;
}

// Every differing table was repaired (none left aside: keyless, schema, key cap).
bool AllRepaired(const std::vector<v1::VerifyTableResult>& tables) {
  for (const auto& t : tables) {
    if (!TableEqual(t) && !t.repair_note().empty()) return false;
  }
  return true;
}

void PrintTableHuman(const v1::VerifyTableResult& t) {
  if (TableEqual(t)) {
    std::printf("%s: equal\n", t.table().c_str());
  } else {
    std::printf(
        "%s: DIFFERENT (%llu missing on the standby, %llu extra on the standby, %llu "
        "changed%s)\n",
        t.table().c_str(), static_cast<unsigned long long>(t.missing_count()),
        static_cast<unsigned long long>(t.extra_count()),
        static_cast<unsigned long long>(t.changed_count()),
        t.keyless() ? "; keyless: counts of rows" : "");
  }
  for (const auto& s : t.schema()) std::printf("  schema   %s\n", s.c_str());
  for (const auto& n : t.notes()) std::printf("  note     %s\n", n.c_str());
  for (const auto& k : t.missing()) std::printf("  missing  %s\n", KeyText(t, k).c_str());
  for (const auto& k : t.extra()) std::printf("  extra    %s\n", KeyText(t, k).c_str());
  for (const auto& k : t.changed()) std::printf("  changed  %s\n", KeyText(t, k).c_str());
  if (t.truncated()) std::printf("  (more keys not listed; the counts are complete)\n");
  if (t.repaired_rows() + t.repair_skipped() > 0) {
    std::printf(
        "  repaired %llu row(s) on the standby, %llu left to apply (changed since the cut)\n",
        static_cast<unsigned long long>(t.repaired_rows()),
        static_cast<unsigned long long>(t.repair_skipped()));
  }
  if (!t.repair_note().empty()) std::printf("  repair   %s\n", t.repair_note().c_str());
}

}  // namespace

void BlockInterrupts() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int RunVerify(v1::Admin::Stub& stub, const VerifyArgs& args) {
  // Ctrl-C cancels the call; a thread takes the signal (TryCancel is not signal-safe).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000) + 5000));
  if (!args.token.empty()) ctx.AddMetadata("authorization", "Bearer " + args.token);
  std::atomic<bool> done{false};
  std::atomic<bool> interrupted{false};
  std::thread signals([&] {
    int sig = 0;
    while (!done.load()) {
      timespec wait{0, 100 * 1000 * 1000};
      sig = sigtimedwait(&set, nullptr, &wait);
      if (sig == SIGINT || sig == SIGTERM) {
        interrupted = true;
        ctx.TryCancel();
        return;
      }
    }
  });

  v1::VerifyRequest request;
  for (const auto& t : args.tables) request.add_tables(t);
  request.set_max_keys(args.max_keys);
  request.set_bucket(args.bucket);
  request.set_repair(args.repair);
  request.set_max_rows_per_second(args.max_rows_per_second);
  request.set_timeout_ms(static_cast<uint32_t>(args.timeout_s * 1000));
  auto reader = stub.Verify(&ctx, request);
  v1::VerifyEvent event;
  std::vector<v1::VerifyTableResult> tables;
  std::optional<v1::VerifySummary> summary;
  std::string operation;
  while (reader->Read(&event)) {
    if (operation.empty() && !event.operation().empty()) {
      operation = event.operation();
      std::fprintf(stderr, "verify: operation %s\n", operation.c_str());
    }
    if (event.has_table()) {
      tables.push_back(event.table());
      std::fprintf(stderr, "verify: %s: %s\n", event.table().table().c_str(),
                   TableEqual(event.table()) ? "equal" : "different");
    } else if (event.has_summary()) {
      summary = event.summary();
    } else if (!event.step().empty()) {
      std::fprintf(stderr, "verify: %s\n", event.step().c_str());
    }
  }
  grpc::Status status = reader->Finish();
  done = true;
  signals.join();
  if (!status.ok() || !summary.has_value()) {
    std::fprintf(stderr, "ferryctl: verify %s at %s: %s (%d)\n",
                 interrupted ? "interrupted" : "failed", args.admin.c_str(),
                 status.ok() ? "no result" : status.error_message().c_str(),
                 static_cast<int>(status.error_code()));
    return 1;
  }
  if (args.json) {
    std::vector<std::string> out;
    for (const auto& t : tables) {
      std::vector<std::string> schema;
      for (const auto& s : t.schema()) schema.push_back(Json(s));
      std::vector<std::string> notes;
      for (const auto& n : t.notes()) notes.push_back(Json(n));
      out.push_back(absl::StrCat(
          "{\"table\": ", Json(t.table()), ", \"equal\": ", TableEqual(t) ? "true" : "false",
          ", \"keyless\": ", t.keyless() ? "true" : "false",
          ", \"missing\": ", KeysJson(t, t.missing()), ", \"extra\": ", KeysJson(t, t.extra()),
          ", \"changed\": ", KeysJson(t, t.changed()), ", \"missing_count\": ", t.missing_count(),
          ", \"extra_count\": ", t.extra_count(), ", \"changed_count\": ", t.changed_count(),
          ", \"truncated\": ", t.truncated() ? "true" : "false",
          ", \"repaired_rows\": ", t.repaired_rows(), ", \"repair_skipped\": ", t.repair_skipped(),
          ", \"schema\": [", absl::StrJoin(schema, ", "), "], \"notes\": [",
          absl::StrJoin(notes, ", "), "], \"repair_note\": ", Json(t.repair_note()), "}"));
    }
    std::printf(
        "{\"equal\": %s, \"differences\": %llu, \"truncated\": %s, \"operation\": %s, "
        "\"cut\": %s, \"rows_compared\": %llu, \"wire_bytes\": %llu, \"repaired\": %s, "
        "\"recheck_equal\": %s, \"recheck_differences\": %llu, \"tables\": [%s]}\n",
        summary->equal() ? "true" : "false",
        static_cast<unsigned long long>(summary->differences()),
        summary->truncated() ? "true" : "false", Json(operation).c_str(),
        Json(summary->cut()).c_str(), static_cast<unsigned long long>(summary->rows_compared()),
        static_cast<unsigned long long>(summary->wire_bytes()),
        summary->rechecked() ? "true" : "false", summary->recheck_equal() ? "true" : "false",
        static_cast<unsigned long long>(summary->recheck_differences()),
        absl::StrJoin(out, ", ").c_str());
  } else if (args.bucket) {
    for (const auto& t : tables) PrintTableHuman(t);
    std::printf(
        "%s: %llu difference(s); %llu keys compared (%llu body bytes read) with %s, cut %s\n",
        summary->equal() ? "EQUAL" : "DIFFERENT",
        static_cast<unsigned long long>(summary->differences()),
        static_cast<unsigned long long>(summary->rows_compared()),
        static_cast<unsigned long long>(summary->bytes_compared()),
        summary->standby_region().c_str(), summary->cut().c_str());
  } else {
    for (const auto& t : tables) PrintTableHuman(t);
    std::printf(
        "%s: %llu difference(s) over %zu table(s); %llu rows compared at cut %s with %s, "
        "%llu bytes exchanged\n",
        summary->equal() ? "EQUAL" : "DIFFERENT",
        static_cast<unsigned long long>(summary->differences()), tables.size(),
        static_cast<unsigned long long>(summary->rows_compared()), summary->cut().c_str(),
        summary->standby_region().c_str(), static_cast<unsigned long long>(summary->wire_bytes()));
  }
  if (args.repair) {
    if (summary->equal()) return 0;
    if (!args.json) {
      std::printf("repair: %s\n", !summary->rechecked()      ? "nothing was repaired"
                                  : summary->recheck_equal() ? "the repaired tables are now EQUAL"
                                                             : "the repaired tables still DIFFER");
    }
    return summary->rechecked() && summary->recheck_equal() && AllRepaired(tables) ? 0 : 2;
  }
  return summary->equal() ? 0 : 2;
}

}  // namespace ferry::ctl
