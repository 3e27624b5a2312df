#include "cmd/ferryctl_failback.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/base/json_text.h"

namespace ferry::ctl {
namespace {

void Prepare(grpc::ClientContext& ctx, const std::string& token, double timeout_s) {
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
}

int Failed(const char* verb, const grpc::Status& status) {
  std::fprintf(stderr, "ferryctl: %s failed: %s\n", verb, status.error_message().c_str());
  return 1;
}

std::string Or(const std::string& text, const char* none) { return text.empty() ? none : text; }

// A JSON value kept as text: itself when present, null otherwise.
std::string JsonOrNull(const std::string& json) { return json.empty() ? "null" : json; }

std::string EntryJson(const v1::QuarantineEntry& e) {
  return absl::StrCat(
      "{\"id\": ", e.id(), ", \"source_region\": ", JsonString(e.source_region()),
      ", \"epoch\": ", e.epoch(), ", \"xact\": ", JsonString(e.xact()),
      ", \"commit_position\": ", JsonString(e.commit_position()),
      ", \"committed_at\": ", JsonString(e.committed_at()),
      ", \"table\": ", JsonString(absl::StrCat(e.table_schema(), ".", e.table_name())),
      ", \"op\": ", JsonString(e.op()), ", \"key\": ", JsonOrNull(e.key()),
      ", \"after\": ", JsonOrNull(e.after()),
      ", \"old_primary_row\": ", JsonOrNull(e.old_primary_row()),
      ", \"current_row\": ", JsonOrNull(e.current_row()), ", \"status\": ", JsonString(e.status()),
      ", \"decided_at\": ", e.decided_at().empty() ? "null" : JsonString(e.decided_at()),
      ", \"note\": ", e.note().empty() ? "null" : JsonString(e.note()), "}");
}

void PrintEntry(const v1::QuarantineEntry& e, bool rows) {
  std::printf("%6lld  %-9s %-8s %s.%s %s  (xact %s at %s, %s epoch %llu)\n",
              static_cast<long long>(e.id()), e.status().c_str(), e.op().c_str(),
              e.table_schema().c_str(), e.table_name().c_str(), Or(e.key(), "(all rows)").c_str(),
              e.xact().c_str(), e.commit_position().c_str(), e.source_region().c_str(),
              static_cast<unsigned long long>(e.epoch()));
  if (!rows) return;
  std::printf("        after:           %s\n", Or(e.after(), "(none)").c_str());
  std::printf("        old primary row: %s\n", Or(e.old_primary_row(), "(none)").c_str());
  std::printf("        primary's row:   %s\n", Or(e.current_row(), "(none)").c_str());
  if (!e.decided_at().empty()) {
    std::printf("        decided at %s%s%s\n", e.decided_at().c_str(), e.note().empty() ? "" : ": ",
                e.note().c_str());
  }
}

}  // namespace

std::string ParseQuarantine(const std::vector<std::string>& operands, QuarantineArgs* args) {
  if (operands.empty()) return "quarantine needs list, show ID, reapply ID or discard ID";
  args->verb = operands[0];
  if (args->verb == "list") {
    if (operands.size() != 1) return "quarantine list takes no operand";
    if (!args->note.empty()) return "--note is for reapply and discard";
    return "";
  }
  if (args->verb != "show" && args->verb != "reapply" && args->verb != "discard") {
    return absl::StrCat("unknown quarantine verb '", args->verb,
                        "' (list, show ID, reapply ID, discard ID)");
  }
  if (operands.size() != 2) return absl::StrCat("quarantine ", args->verb, " takes one ID");
  char* end = nullptr;
  errno = 0;
  const long long id = std::strtoll(operands[1].c_str(), &end, 10);
  if (operands[1].empty() || *end != '\0' || id < 1 || errno == ERANGE) {
    return absl::StrCat("quarantine ", args->verb, ": '", operands[1], "' is not an entry id");
  }
  args->id = id;
  if (!args->status.empty() || args->limit != 0) return "--status and --limit are for list";
  if (args->verb == "show" && !args->note.empty()) return "--note is for reapply and discard";
  return "";
}

int RunRejoin(v1::Admin::Stub& stub, const std::string& token, double timeout_s, bool json) {
  grpc::ClientContext ctx;
  Prepare(ctx, token, timeout_s + 60);  // the call outlives the rejoin's own deadline
  v1::RejoinRequest request;
  request.set_timeout_ms(static_cast<int64_t>(timeout_s * 1000));
  v1::RejoinReply reply;
  const grpc::Status status = stub.Rejoin(&ctx, request, &reply);
  if (!status.ok()) return Failed("rejoin", status);
  if (json) {
    std::vector<std::string> anomalies, steps;
    for (const std::string& a : reply.anomalies()) anomalies.push_back(JsonString(a));
    for (const std::string& s : reply.steps()) steps.push_back(JsonString(s));
    std::printf(
        "{\"operation\": %s, \"new_primary\": %s, \"epoch\": %llu, \"divergence_seq\": %llu, "
        "\"quarantined\": %llu, \"transactions\": %llu, \"differences\": %llu, "
        "\"repaired_rows\": %llu, \"anomaly_count\": %llu, \"anomalies\": [%s], "
        "\"objects_quarantined\": %llu, \"bucket_differences\": %llu, \"bucket_repaired\": "
        "%llu, \"steps\": [%s]}\n",
        JsonString(reply.operation()).c_str(), JsonString(reply.new_primary()).c_str(),
        static_cast<unsigned long long>(reply.epoch()),
        static_cast<unsigned long long>(reply.divergence_seq()),
        static_cast<unsigned long long>(reply.quarantined()),
        static_cast<unsigned long long>(reply.transactions()),
        static_cast<unsigned long long>(reply.differences()),
        static_cast<unsigned long long>(reply.repaired_rows()),
        static_cast<unsigned long long>(reply.anomaly_count()),
        absl::StrJoin(anomalies, ", ").c_str(),
        static_cast<unsigned long long>(reply.objects_quarantined()),
        static_cast<unsigned long long>(reply.bucket_differences()),
        static_cast<unsigned long long>(reply.bucket_repaired()),
        absl::StrJoin(steps, ", ").c_str());
    return 0;
  }
  for (const std::string& step : reply.steps()) std::printf("  %s\n", step.c_str());
  std::printf(
      "rejoin %s done: standby of %s under epoch %llu; %llu change(s) of %llu transaction(s) "
      "kept in the quarantine (ferryctl quarantine list on %s)\n",
      reply.operation().c_str(), reply.new_primary().c_str(),
      static_cast<unsigned long long>(reply.epoch()),
      static_cast<unsigned long long>(reply.quarantined()),
      static_cast<unsigned long long>(reply.transactions()), reply.new_primary().c_str());
  if (reply.objects_quarantined() > 0 || reply.bucket_differences() > 0) {
    std::printf(
        "bucket: %llu object event(s) never shipped kept in the quarantine (their versions stay "
        "in this region's bucket); %llu key(s) differed, %llu repaired here\n",
        static_cast<unsigned long long>(reply.objects_quarantined()),
        static_cast<unsigned long long>(reply.bucket_differences()),
        static_cast<unsigned long long>(reply.bucket_repaired()));
  }
  for (const std::string& a : reply.anomalies()) {
    std::printf("anomaly (differed, not explained by the quarantine; repaired): %s\n", a.c_str());
  }
  return 0;
}

int RunQuarantine(v1::Admin::Stub& stub, const std::string& admin, const std::string& token,
                  double timeout_s, bool json, const QuarantineArgs& args) {
  (void)admin;
  grpc::ClientContext ctx;
  Prepare(ctx, token, timeout_s);
  v1::QuarantineRequest request;
  request.set_verb(args.verb);
  request.set_id(args.id);
  request.set_note(args.note);
  request.set_status(args.status);
  request.set_limit(args.limit);
  v1::QuarantineReply reply;
  const grpc::Status status = stub.Quarantine(&ctx, request, &reply);
  if (!status.ok()) return Failed(absl::StrCat("quarantine ", args.verb).c_str(), status);
  if (json) {
    std::vector<std::string> entries;
    for (const v1::QuarantineEntry& e : reply.entries()) entries.push_back(EntryJson(e));
    std::printf(
        "{\"total\": %llu, \"pending\": %llu, \"decided\": %llu, \"outcome\": %s, "
        "\"entries\": [%s]}\n",
        static_cast<unsigned long long>(reply.total()),
        static_cast<unsigned long long>(reply.pending()),
        static_cast<unsigned long long>(reply.decided()), JsonString(reply.outcome()).c_str(),
        absl::StrJoin(entries, ", ").c_str());
    return 0;
  }
  if (args.verb == "list") {
    for (const v1::QuarantineEntry& e : reply.entries()) PrintEntry(e, false);
    std::printf("%llu entr%s listed of %llu; %llu pending a decision\n",
                static_cast<unsigned long long>(reply.entries_size()),
                reply.entries_size() == 1 ? "y" : "ies",
                static_cast<unsigned long long>(reply.total()),
                static_cast<unsigned long long>(reply.pending()));
    return 0;
  }
  for (const v1::QuarantineEntry& e : reply.entries()) PrintEntry(e, true);
  if (!reply.outcome().empty()) std::printf("%s\n", reply.outcome().c_str());
  return 0;
}

}  // namespace ferry::ctl
