// ferryctl: the operator's command line for ferryd's admin service.
//
//   ferryctl --admin HOST:PORT [--token-file F] [--timeout SECONDS] status [--json]
//   ferryctl --admin HOST:PORT tables [--json]
//   ferryctl --admin HOST:PORT pause | resume [--json]
//   ferryctl --admin HOST:PORT resume-table SCHEMA.TABLE [--json]
//   ferryctl --admin HOST:PORT reseed LOG_ID [--json]
//   ferryctl --admin HOST:PORT resnapshot SCHEMA.TABLE [--json]
//   ferryctl --admin PRIMARY verify [--table SCHEMA.TABLE]... [--bucket] [--max-keys N] [--json]
//   ferryctl --admin HOST:PORT reverse [--timeout SECONDS] [--json]
//   ferryctl --admin HOST:PORT promote [--force] [--timeout SECONDS] [--json]
//
// The admin token comes from --token-file or the FERRY_ADMIN_TOKEN environment variable, never
// from the command line itself (it would show in `ps`). Exit codes (DESIGN.md's operator
// contract): 0 success, 1 any error (the call failed, was refused, or the command line is
// wrong; the message is on stderr). 2 is kept for `verify`: the regions differ.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cmd/ferryctl_failback.h"
#include "cmd/ferryctl_status.h"
#include "cmd/ferryctl_tables.h"
#include "cmd/ferryctl_verify.h"
#include "engine/base/json_text.h"
#include "google/protobuf/util/json_util.h"
#include "proto/admin.grpc.pb.h"

namespace {

constexpr char kUsage[] = R"(usage: ferryctl --admin HOST:PORT [options] COMMAND

Commands:
  status            role, epoch, state, positions, lag, RPO, peer, the last switchover or
                    promote, the last verify, the quarantine, and every table
  tables            every replicated table: state (snapshotting with rows copied of the
                    estimated total and an ETA, replicating, stopped with the reason),
                    changes captured or applied, last applied source commit time, lag
  pause             hold shipping and applying back (capture goes on)
  resume            undo pause
  resume-table TABLE  standby: re-apply a stopped table (schema.name) from the change that
                    stopped it, once its cause is fixed, and let it apply again (refused
                    for a table that needs a re-snapshot: the log it needs is gone)
  reseed LOG_ID     standby: discard the target's apply progress that counts the upstream
                    log LOG_ID (status: "target log", or "unrecorded") after the peer's log
                    was re-created, so that apply starts the new log from its beginning;
                    empty or re-create the target database first (docs/operations.md)
  resnapshot TABLE  primary: copy one table (schema.name) at a consistent point of the history
                    and make the standby's copy equal, lifting its stop there; writers of the
                    table wait while it is copied (SHARE lock on the primary's database)
  verify            primary: compare both regions' databases at one consistent cut, under
                    live load; prints the differing keys (missing, extra or changed on the
                    standby, schema differences); exit 0 equal, 2 different, 1 error.
                    --table SCHEMA.TABLE (repeatable; default every table), --max-keys N
                    (default 1000; the counts are complete), --timeout (default 3600),
                    --repair (make the standby's differing keys equal to the primary's at
                    the cut, then verify again: exit 0 when they end equal), --rate N (each
                    side reads at most N rows a second); --bucket compares the two
                    regions' buckets instead (keys, size, content type, user metadata and
                    the SHA-256 of each body; docs/objects.md, "Verify")
  reverse           planned switchover, sent to either region: fence the primary's database,
                    drain it to the standby, carry sequences over, raise the epoch and flip
                    the roles; returns when the former standby is the writable primary and
                    the former primary its fenced standby. --timeout (default 60) bounds the
                    part before the flip: past it everything is rolled back
  promote [--force] unplanned failover, sent to the standby while the primary is lost:
                    apply what was received, become primary under a new epoch, move
                    sequences past what the lost primary may have used, take writes, and
                    print the loss bound. Refused while the primary answers as healthy,
                    unless --force
  rejoin            failback, sent to a former primary fenced by a promote elsewhere: keep
                    every change it committed and never shipped in ferry.quarantine on the
                    new primary, repair its database to match the new primary at one cut
                    and make it the new primary's standby. --timeout (default 300). Sent
                    again after a failure, it goes on from where it stopped
  quarantine list | show ID | reapply ID | discard ID
                    primary: the kept changes of a rejoin and the operator's decision on
                    each source transaction (reapply: all or nothing through normal SQL,
                    refused with the reason when it conflicts with the primary's rows now).
                    --status pending|reapplied|discarded, --limit N (list); --note TEXT
                    (recorded with a decision)

Options:
  --admin HOST:PORT     ferryd's admin listener (listen.admin in its config); or FERRY_ADMIN
  --token-file FILE     admin token (or the FERRY_ADMIN_TOKEN environment variable)
  --timeout SECONDS     give up after this long (default 5)
  --json                machine-readable output (every command)
  --help                this text

Exit codes: 0 success, 1 any error (message on stderr).
)";

struct Args {
  std::string admin;
  std::string token;
  double timeout_s = 5;
  bool timeout_set = false;
  std::string command;
  std::string table;   // resume-table's and resnapshot's operand
  std::string log_id;  // reseed's operand
  bool json = false;
  bool force = false;                      // promote
  std::vector<std::string> verify_tables;  // verify's --table
  bool verify_bucket = false;              // verify's --bucket
  uint32_t max_keys = 0;                   // verify's --max-keys
  bool repair = false;                     // verify's --repair
  uint64_t max_rows_per_second = 0;        // verify's --rate
  ferry::ctl::QuarantineArgs quarantine;   // quarantine's verb, id and options
};

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "ferryctl: %s\n\n", error.c_str());
  std::fputs(kUsage, error.empty() ? stdout : stderr);
  return error.empty() ? 0 : 1;
}

bool ReadTokenFile(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = absl::StrCat("cannot read token file ", path);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *token = ss.str();
  while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
  return true;
}

using ferry::JsonString;

// The outcome of pause (paused = true) or resume.
void PrintPaused(bool paused, bool was_paused, bool json) {
  if (json) {
    std::printf("{\"paused\": %s, \"was_paused\": %s}\n", paused ? "true" : "false",
                was_paused ? "true" : "false");
  } else if (paused) {
    std::printf("paused%s\n", was_paused ? " (already)" : "");
  } else {
    std::printf("resumed%s\n", was_paused ? "" : " (was not paused)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (const char* env = std::getenv("FERRY_ADMIN")) args.admin = env;
  if (const char* env = std::getenv("FERRY_ADMIN_TOKEN")) args.token = env;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (a == "--help" || a == "-h") return Usage("");
    if (a == "--admin") {
      const char* v = value("--admin");
      if (v == nullptr) return Usage("--admin needs HOST:PORT");
      args.admin = v;
    } else if (a == "--token-file") {
      const char* v = value("--token-file");
      if (v == nullptr) return Usage("--token-file needs a path");
      std::string error;
      if (!ReadTokenFile(v, &args.token, &error)) {
        std::fprintf(stderr, "ferryctl: %s\n", error.c_str());
        return 1;
      }
    } else if (a == "--timeout") {
      const char* v = value("--timeout");
      char* end = nullptr;
      args.timeout_s = v ? std::strtod(v, &end) : 0;
      if (v == nullptr || *end != '\0' || args.timeout_s <= 0 || args.timeout_s > 3600) {
        return Usage("--timeout needs a number of seconds between 0 and 3600");
      }
      args.timeout_set = true;
    } else if (a == "--json") {
      args.json = true;
    } else if (a == "--force") {
      args.force = true;
    } else if (a == "--bucket") {
      args.verify_bucket = true;
    } else if (a == "--table") {
      const char* v = value("--table");
      if (v == nullptr) return Usage("--table needs SCHEMA.TABLE");
      args.verify_tables.push_back(v);
    } else if (a == "--max-keys") {
      const char* v = value("--max-keys");
      char* end = nullptr;
      const long n = v ? std::strtol(v, &end, 10) : 0;
      if (v == nullptr || *end != '\0' || n < 1 || n > 1000000) {
        return Usage("--max-keys needs a number between 1 and 1000000");
      }
      args.max_keys = static_cast<uint32_t>(n);
    } else if (a == "--repair") {
      args.repair = true;
    } else if (a == "--rate") {
      const char* v = value("--rate");
      char* end = nullptr;
      const long long n = v ? std::strtoll(v, &end, 10) : 0;
      if (v == nullptr || *end != '\0' || n < 1) {
        return Usage("--rate needs a number of rows a second (at least 1)");
      }
      args.max_rows_per_second = static_cast<uint64_t>(n);
    } else if (a == "--note" || a == "--status" || a == "--limit") {
      const char* v = value(a.c_str());
      if (v == nullptr) return Usage(absl::StrCat(a, " needs a value"));
      if (a == "--note") args.quarantine.note = v;
      if (a == "--status") args.quarantine.status = v;
      if (a == "--limit") {
        char* end = nullptr;
        const long n = std::strtol(v, &end, 10);
        if (*end != '\0' || n < 1 || n > 100000) {
          return Usage("--limit needs a number between 1 and 100000");
        }
        args.quarantine.limit = static_cast<uint32_t>(n);
      }
    } else if (!a.empty() && a[0] == '-') {
      return Usage(absl::StrCat("unknown option ", a));
    } else {
      rest.push_back(a);
    }
  }
  if (rest.empty()) return Usage("no command given");
  args.command = rest[0];
  if (args.command != "status" && args.command != "tables" && args.command != "pause" &&
      args.command != "resume" && args.command != "resume-table" && args.command != "reseed" &&
      args.command != "resnapshot" && args.command != "verify" && args.command != "reverse" &&
      args.command != "promote" && args.command != "rejoin" && args.command != "quarantine") {
    return Usage(absl::StrCat("unknown command '", args.command, "'"));
  }
  if (args.command != "quarantine" &&
      (!args.quarantine.note.empty() || !args.quarantine.status.empty() || args.quarantine.limit)) {
    return Usage("--note, --status and --limit are options of quarantine");
  }
  if (args.command == "quarantine") {
    std::string error = ferry::ctl::ParseQuarantine(
        std::vector<std::string>(rest.begin() + 1, rest.end()), &args.quarantine);
    if (!error.empty()) return Usage(error);
    if (args.admin.empty()) return Usage("--admin HOST:PORT is required");
    auto stub = ferry::v1::Admin::NewStub(
        grpc::CreateChannel(args.admin, grpc::InsecureChannelCredentials()));
    return ferry::ctl::RunQuarantine(*stub, args.admin, args.token,
                                     args.timeout_set ? args.timeout_s : 120, args.json,
                                     args.quarantine);
  }
  const size_t operands =
      args.command == "resume-table" || args.command == "reseed" || args.command == "resnapshot"
          ? 1
          : 0;
  if (rest.size() - 1 != operands) {
    return Usage(operands == 0 ? "one command at a time"
                 : args.command == "reseed"
                     ? "reseed takes one LOG_ID (or unrecorded)"
                     : absl::StrCat(args.command, " takes one TABLE (schema.name)"));
  }
  if (args.command == "reseed") args.log_id = rest[1];
  if (args.command == "resume-table" || args.command == "resnapshot") {
    args.table = rest[1];
    // A replay can take a while: the call's own deadline, unless --timeout says otherwise.
    if (!args.timeout_set) args.timeout_s = 300;
  }
  if (args.force && args.command != "promote") return Usage("--force is for promote only");
  if (args.admin.empty()) return Usage("--admin HOST:PORT is required");
  if ((!args.verify_tables.empty() || args.max_keys != 0 || args.repair ||
       args.max_rows_per_second != 0 || args.verify_bucket) &&
      args.command != "verify") {
    return Usage("--table, --bucket, --max-keys and --repair are options of verify");
  }
  if (args.verify_bucket && (!args.verify_tables.empty() || args.max_rows_per_second != 0)) {
    return Usage("--bucket compares the buckets: --table and --rate are for the databases");
  }
  for (const std::string& t : args.verify_tables) {
    const size_t dot = t.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == t.size()) {
      return Usage(absl::StrCat("--table needs SCHEMA.TABLE, not '", t, "'"));
    }
  }
  if (args.command == "rejoin") {
    auto stub = ferry::v1::Admin::NewStub(
        grpc::CreateChannel(args.admin, grpc::InsecureChannelCredentials()));
    return ferry::ctl::RunRejoin(*stub, args.token, args.timeout_set ? args.timeout_s : 300,
                                 args.json);
  }
  if (args.command == "verify") {
    ferry::ctl::BlockInterrupts();  // before gRPC starts a thread (Ctrl-C cancels the verify)
    auto verify_stub = ferry::v1::Admin::NewStub(
        grpc::CreateChannel(args.admin, grpc::InsecureChannelCredentials()));
    return ferry::ctl::RunVerify(*verify_stub,
                                 {.admin = args.admin,
                                  .token = args.token,
                                  .timeout_s = args.timeout_set ? args.timeout_s : 3600,
                                  .json = args.json,
                                  .tables = args.verify_tables,
                                  .bucket = args.verify_bucket,
                                  .max_keys = args.max_keys,
                                  .repair = args.repair,
                                  .max_rows_per_second = args.max_rows_per_second});
  }
  // reverse's --timeout bounds the switchover before its flip; the call itself may take that
  // long plus the completion.
  const double reverse_timeout_s = args.timeout_set ? args.timeout_s : 60;
  if (args.command == "reverse" || args.command == "promote") {
    args.timeout_s = reverse_timeout_s + 60;
  }

  auto channel = grpc::CreateChannel(args.admin, grpc::InsecureChannelCredentials());
  auto stub = ferry::v1::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  if (!args.token.empty()) ctx.AddMetadata("authorization", "Bearer " + args.token);

  grpc::Status status;
  if (args.command == "tables") {
    ferry::v1::StatusReply reply;
    status = stub->Status(&ctx, ferry::v1::StatusRequest(), &reply);
    if (status.ok()) {
      const std::string text = args.json ? ferry::ctl::TablesJson(reply)
                                         : ferry::ctl::TablesText(reply, /*peer_stops=*/true);
      std::fputs(text.empty() ? "no replicated table known yet\n" : text.c_str(), stdout);
    }
  } else if (args.command == "status") {
    ferry::v1::StatusReply reply;
    status = stub->Status(&ctx, ferry::v1::StatusRequest(), &reply);
    if (status.ok()) {
      if (args.json) {
        std::string json;
        google::protobuf::util::JsonPrintOptions options;
        options.add_whitespace = true;
        options.always_print_primitive_fields = true;
        options.preserve_proto_field_names = true;
        (void)google::protobuf::util::MessageToJsonString(reply, &json, options);
        std::fputs(json.c_str(), stdout);
      } else {
        ferry::ctl::PrintStatus(reply);
      }
    }
  } else if (args.command == "pause") {
    ferry::v1::PauseReply reply;
    status = stub->Pause(&ctx, ferry::v1::PauseRequest(), &reply);
    if (status.ok()) PrintPaused(true, reply.was_paused(), args.json);
  } else if (args.command == "reseed") {
    ferry::v1::ReseedRequest request;
    request.set_discard_log_id(args.log_id);
    ferry::v1::ReseedReply reply;
    status = stub->Reseed(&ctx, request, &reply);
    if (status.ok() && args.json) {
      std::printf(
          "{\"discarded_log_id\": %s, \"discarded_applied_seq\": %llu, \"inbound_log_id\": %s}\n",
          JsonString(reply.discarded_log_id()).c_str(),
          static_cast<unsigned long long>(reply.discarded_applied_seq()),
          JsonString(reply.inbound_log_id()).c_str());
    } else if (status.ok()) {
      std::printf(
          "re-seeded: discarded the target's progress (seq %llu) of log %s; applying log %s from "
          "its beginning\n",
          static_cast<unsigned long long>(reply.discarded_applied_seq()),
          reply.discarded_log_id().c_str(), reply.inbound_log_id().c_str());
    }
  } else if (args.command == "resnapshot") {
    ferry::v1::ResnapshotRequest request;
    request.set_table(args.table);
    ferry::v1::ResnapshotReply reply;
    status = stub->Resnapshot(&ctx, request, &reply);
    if (status.ok() && args.json) {
      std::printf("{\"table\": %s, \"rows\": %llu, \"id\": %s}\n",
                  JsonString(reply.table()).c_str(), static_cast<unsigned long long>(reply.rows()),
                  JsonString(reply.id()).c_str());
    } else if (status.ok()) {
      std::printf(
          "table %s re-snapshotted: %llu rows copied on the primary (copy %s); the standby "
          "replaces its copy when it applies this point of the history\n",
          reply.table().c_str(), static_cast<unsigned long long>(reply.rows()), reply.id().c_str());
    }
  } else if (args.command == "reverse") {
    // Progress: the region's operation and step as status shows them, while the call runs.
    std::atomic<bool> done{false};
    std::thread progress([&] {
      std::string last;
      while (!done.load()) {
        grpc::ClientContext sctx;
        sctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        if (!args.token.empty()) sctx.AddMetadata("authorization", "Bearer " + args.token);
        ferry::v1::StatusReply s;
        if (stub->Status(&sctx, ferry::v1::StatusRequest(), &s).ok() && !s.operation().empty() &&
            s.operation() != last && !done.load()) {
          last = s.operation();
          std::fprintf(args.json ? stderr : stdout, "... %s\n", last.c_str());
          std::fflush(args.json ? stderr : stdout);
        }
        for (int i = 0; i < 10 && !done.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the poll interval
        }
      }
    });
    ferry::v1::ReverseRequest request;
    request.set_timeout_ms(static_cast<int64_t>(reverse_timeout_s * 1000));
    ferry::v1::ReverseReply reply;
    status = stub->Reverse(&ctx, request, &reply);
    done = true;
    progress.join();
    if (status.ok() && args.json) {
      std::string steps;
      for (const std::string& step : reply.steps()) {
        absl::StrAppend(&steps, steps.empty() ? "" : ", ", JsonString(step));
      }
      std::printf(
          "{\"operation\": %s, \"new_primary\": %s, \"epoch\": %llu, \"through_seq\": %llu, "
          "\"steps\": [%s]}\n",
          JsonString(reply.operation()).c_str(), JsonString(reply.new_primary()).c_str(),
          static_cast<unsigned long long>(reply.epoch()),
          static_cast<unsigned long long>(reply.through_seq()), steps.c_str());
    } else if (status.ok()) {
      for (const std::string& step : reply.steps()) std::printf("  %s\n", step.c_str());
      std::printf("switchover %s done: %s is the primary under epoch %llu\n",
                  reply.operation().c_str(), reply.new_primary().c_str(),
                  static_cast<unsigned long long>(reply.epoch()));
    }
  } else if (args.command == "promote") {
    ferry::v1::PromoteRequest request;
    request.set_force(args.force);
    request.set_timeout_ms(static_cast<int64_t>(reverse_timeout_s * 1000));
    ferry::v1::PromoteReply reply;
    status = stub->Promote(&ctx, request, &reply);
    const ferry::v1::LossBound& loss = reply.loss();
    if (status.ok() && args.json) {
      std::string stopped;
      for (const std::string& t : reply.stopped_tables()) {
        absl::StrAppend(&stopped, stopped.empty() ? "" : ", ", JsonString(t));
      }
      std::printf(
          "{\"operation\": %s, \"epoch\": %llu, \"loss\": {\"known\": %s, \"records\": %llu, "
          "\"bytes\": %llu, \"seconds\": %.3f, \"last_contact_seconds_ago\": %.3f}, "
          "\"stopped_tables\": [%s], \"kept_records\": %llu, \"quarantined\": %llu, "
          "\"objects_not_applied\": {\"objects\": %llu, \"bytes\": %llu, \"records\": %llu}}\n",
          JsonString(reply.operation()).c_str(), static_cast<unsigned long long>(reply.epoch()),
          loss.known() ? "true" : "false", static_cast<unsigned long long>(loss.records()),
          static_cast<unsigned long long>(loss.bytes()), loss.seconds(),
          loss.last_contact_seconds_ago(), stopped.c_str(),
          static_cast<unsigned long long>(reply.kept_records()),
          static_cast<unsigned long long>(reply.quarantined()),
          static_cast<unsigned long long>(reply.objects_not_applied().objects()),
          static_cast<unsigned long long>(reply.objects_not_applied().bytes()),
          static_cast<unsigned long long>(reply.objects_not_applied().records()));
    } else if (status.ok()) {
      for (const std::string& step : reply.steps()) std::printf("  %s\n", step.c_str());
      std::printf("promote %s done: this region is the primary under epoch %llu\n",
                  reply.operation().c_str(), static_cast<unsigned long long>(reply.epoch()));
      if (!loss.known()) {
        std::printf("loss bound: unknown (the lost primary never reported on the stream)\n");
      } else {
        std::printf(
            "loss bound: %llu record(s), at most %llu bytes, %.3f s of changes the lost primary "
            "had and never shipped, as of its last contact %.3f s ago (plus anything it "
            "captured after that)\n",
            static_cast<unsigned long long>(loss.records()),
            static_cast<unsigned long long>(loss.bytes()), loss.seconds(),
            loss.last_contact_seconds_ago());
      }
      for (const std::string& t : reply.stopped_tables()) {
        std::printf("received, not applied (kept in the inbound log): %s\n", t.c_str());
      }
      if (reply.quarantined() > 0) {
        std::printf(
            "%llu change(s) of the stopped table(s) kept in ferry.quarantine (ferryctl "
            "quarantine list)\n",
            static_cast<unsigned long long>(reply.quarantined()));
      }
      if (reply.has_objects_not_applied()) {
        const ferry::v1::ObjectsNotApplied& o = reply.objects_not_applied();
        std::printf(
            "bucket: %llu object(s), %s, received and NOT copied (the lost primary's bucket did "
            "not answer: %s); they are not in this region's bucket\n",
            static_cast<unsigned long long>(o.objects()), ferry::ctl::HumanBytes(o.bytes()).c_str(),
            o.last_error().c_str());
      }
    }
  } else if (args.command == "resume-table") {
    ferry::v1::ResumeTableRequest request;
    request.set_table(args.table);
    ferry::v1::ResumeTableReply reply;
    status = stub->ResumeTable(&ctx, request, &reply);
    if (status.ok() && args.json) {
      std::printf("{\"table\": %s, \"resumed_from_seq\": %llu}\n",
                  JsonString(reply.table()).c_str(),
                  static_cast<unsigned long long>(reply.resumed_from_seq()));
    } else if (status.ok()) {
      std::printf("table %s resumed: re-applied from inbound seq %llu, applying again\n",
                  reply.table().c_str(), static_cast<unsigned long long>(reply.resumed_from_seq()));
    }
  } else {
    ferry::v1::ResumeReply reply;
    status = stub->Resume(&ctx, ferry::v1::ResumeRequest(), &reply);
    if (status.ok()) PrintPaused(false, reply.was_paused(), args.json);
  }
  if (!status.ok()) {
    // A deadline means nobody answered; every other error carries ferryd's (or gRPC's) reason.
    const char* what = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                           ? "no answer from ferryd admin at "
                           : "ferryd admin at ";
    std::fprintf(stderr, "ferryctl: %s%s: %s (%d)\n", what, args.admin.c_str(),
                 status.error_message().c_str(), static_cast<int>(status.error_code()));
    return 1;
  }
  return 0;
}
