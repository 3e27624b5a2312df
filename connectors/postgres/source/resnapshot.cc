#include "connectors/postgres/source/resnapshot.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "connectors/postgres/common/ferry_messages.h"
#include "connectors/postgres/common/identifiers.h"
#include "connectors/postgres/source/catalog.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "connectors/postgres/source/relation_cache.h"
#include "connectors/postgres/source/staged_copy.h"
#include "engine/base/kill_point.h"
#include "engine/base/status_macros.h"
#include "engine/rows/copy_rows.h"

namespace ferry::pg {
namespace {

std::string NewCopyId() {
  absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

// Errors of the source database as the admin call reports them: what can be retried as is is
// kUnavailable, with the lock timeout named.
absl::Status Retryable(const absl::Status& s, const std::string& table, absl::Duration timeout) {
  if (HasSqlState(s, "55P03")) {
    return absl::UnavailableError(absl::StrCat(
        "the SHARE lock on ", table, " was not granted within ", absl::FormatDuration(timeout),
        " (long transactions write to it); nothing was copied: run resnapshot again"));
  }
  if (s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kInternal) {
    return absl::UnavailableError(s.message());
  }
  return s;
}

// Copies the locked table into the staged copy; returns the rows.
absl::StatusOr<uint64_t> CopyInto(PgConnection& conn, const PublishedTable& table,
                                  const v1::Relation& relation, StagedCopyWriter& writer) {
  std::vector<std::string> columns;
  for (const v1::Column& c : relation.columns()) columns.push_back(QuoteIdentifier(c.name()));
  const std::string select = absl::StrCat("COPY (SELECT ", absl::StrJoin(columns, ", "), " FROM ",
                                          table.partitioned ? "" : "ONLY ",
                                          QualifiedName(table.schema, table.name), ") TO STDOUT");
  FERRY_ASSIGN_OR_RETURN(PgResult r, conn.Exec(select));
  if (r.status() != PGRES_COPY_OUT) return absl::InternalError("COPY did not start");
  v1::Tuple row;
  while (true) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn.raw(), &buf, /*async=*/0);
    if (n == -1) break;
    if (n == -2) return absl::UnavailableError(conn.ConnectionError("copying").message());
    row.Clear();
    absl::Status parsed =
        ParseCopyTextRow(absl::string_view(buf, n), relation.columns_size(), &row);
    PQfreemem(buf);
    FERRY_RETURN_IF_ERROR(parsed);
    FERRY_RETURN_IF_ERROR(writer.Add(row));
  }
  PgResult end(PQgetResult(conn.raw()));
  if (end.get() == nullptr || end.status() != PGRES_COMMAND_OK) {
    return conn.ResultError(end.get(), "copying");
  }
  while (PGresult* extra = PQgetResult(conn.raw())) PQclear(extra);
  return writer.rows();
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> LeftoverCopies(
    PgConnection& conn, const std::string& staging_dir) {
  std::vector<std::pair<std::string, uint64_t>> later;
  std::error_code ec;
  if (staging_dir.empty() || !std::filesystem::is_directory(staging_dir, ec)) return later;
  for (const auto& entry : std::filesystem::directory_iterator(staging_dir, ec)) {
    const std::string path = entry.path().string();
    if (!IsValidCopyId(entry.path().filename().string())) continue;
    absl::StatusOr<std::unique_ptr<StagedCopyReader>> copy = StagedCopyReader::Open(path);
    if (!copy.ok()) continue;  // being written, or corrupt: its marker says so, if it comes
    absl::StatusOr<PgResult> checked = conn.ExecParams(
        "SELECT pg_xact_status($1::xid8), "
        "(pg_current_wal_insert_lsn() - '0/0')::text",
        {absl::StrCat((*copy)->xid())});
    if (!checked.ok()) {
      if (conn.broken()) return checked.status();
      // An id Postgres refuses (in the future: the file is not ours to judge): kept, said.
      spdlog::warn("postgres source: keeping the staged copy {}: {}", path,
                   checked.status().ToString());
      continue;
    }
    const PgResult& r = *checked;
    const std::optional<std::string> status = r.GetOptional(0, 0);
    uint64_t now = 0;
    if (!absl::SimpleAtoi(r.Get(0, 1), &now)) return absl::InternalError("unreadable WAL position");
    if (status == "committed") {
      // Its commit record ends before `now`: captured once the capture passed `now`.
      later.emplace_back(path, now);
    } else if (status == "in progress") {
      // Being copied now, or its session has not noticed a crash yet: looked at again at the
      // next capture start.
    } else {
      // Rolled back (no marker was ever committed) or too old to know: nothing needs it.
      std::filesystem::remove(path, ec);
      spdlog::info(
          "postgres source: deleted {}, a re-snapshot copy whose transaction did not "
          "commit",
          path);
    }
  }
  return later;
}

absl::StatusOr<ResnapshotDone> ResnapshotTable(const ResnapshotOptions& options,
                                               const std::string& table) {
  const size_t dot = table.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == table.size() || table.size() > 1024 ||
      table.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("resnapshot needs a table as schema.name");
  }
  const std::string schema = table.substr(0, dot);
  const std::string name = table.substr(dot + 1);
  if (schema == kFerrySchema) {
    return absl::FailedPreconditionError(
        absl::StrCat(table, " is one of Ferry's own tables (schema ferry), never replicated"));
  }
  if (options.staging_dir.empty()) {
    return absl::FailedPreconditionError("no staging directory for re-snapshots is configured");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.staging_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", options.staging_dir, ": ", ec.message()));
  }

  absl::StatusOr<std::unique_ptr<PgConnection>> connected = PgConnection::Connect(options.dsn);
  if (!connected.ok()) return absl::UnavailableError(connected.status().message());
  PgConnection& conn = **connected;
  // A database installed by an older ferryd lacks ferry.emit_resnapshot: bring it up to date.
  FERRY_RETURN_IF_ERROR(EnsureDdlCapture(conn));
  FERRY_ASSIGN_OR_RETURN(std::vector<PublishedTable> published,
                         ListPublishedTables(conn, options.publication));
  std::optional<PublishedTable> found;
  for (PublishedTable& p : published) {
    if (p.schema == schema && p.name == name) found = std::move(p);
  }
  if (!found) {
    return absl::NotFoundError(absl::StrCat("no table ", QualifiedName(schema, name),
                                            " in publication ", options.publication,
                                            " (it does not exist or is not replicated)"));
  }

  const std::string id = NewCopyId();
  const std::string path = (std::filesystem::path(options.staging_dir) / id).string();
  bool commit_sent = false;
  auto work = [&]() -> absl::StatusOr<uint64_t> {
    FERRY_RETURN_IF_ERROR(conn.Exec("BEGIN").status());
    FERRY_ASSIGN_OR_RETURN(PgResult xid_result, conn.Exec("SELECT pg_current_xact_id()::text"));
    uint64_t xid = 0;
    if (xid_result.rows() != 1 || !absl::SimpleAtoi(xid_result.Get(0, 0), &xid)) {
      return absl::InternalError("unreadable transaction id");
    }
    FERRY_RETURN_IF_ERROR(conn.Exec(absl::StrCat("SET LOCAL lock_timeout = ",
                                                 absl::ToInt64Milliseconds(options.lock_timeout)))
                              .status());
    FERRY_RETURN_IF_ERROR(
        conn.Exec(absl::StrCat("LOCK TABLE ", QualifiedName(schema, name), " IN SHARE MODE"))
            .status());
    // The shape under the lock (no DDL can change it until COMMIT).
    FERRY_ASSIGN_OR_RETURN(RelationMessage m, DescribeTable(conn, found->relation_id));
    PgRelationCatalog catalog(options.dsn);
    FERRY_ASSIGN_OR_RETURN(v1::Relation relation, BuildRelation(m, catalog));
    FERRY_ASSIGN_OR_RETURN(auto writer, StagedCopyWriter::Create(path, xid, relation));
    FERRY_ASSIGN_OR_RETURN(uint64_t rows, CopyInto(conn, *found, relation, *writer));
    FERRY_RETURN_IF_ERROR(writer->Finish());
    KillPoint("resnapshot.copied");  // the copy staged, its transaction not committed
    FERRY_RETURN_IF_ERROR(
        conn.ExecParams("SELECT ferry.emit_resnapshot($1, $2, $3)", {schema, name, id}).status());
    commit_sent = true;
    FERRY_RETURN_IF_ERROR(conn.Exec("COMMIT").status());
    return rows;
  };
  absl::StatusOr<uint64_t> rows = work();
  if (!rows.ok()) {
    if (commit_sent && conn.broken()) {
      // The COMMIT may have happened: the capture may still need the copy.
      return absl::UnknownError(absl::StrCat(
          "the connection was lost during COMMIT of the re-snapshot of ", table, " (copy ", id,
          "); if the standby's table does not become equal, run it again: ",
          rows.status().message()));
    }
    if (!conn.broken()) (void)conn.Exec("ROLLBACK");
    std::filesystem::remove(path, ec);
    return Annotate(Retryable(rows.status(), table, options.lock_timeout),
                    absl::StrCat("re-snapshotting ", table));
  }
  KillPoint("resnapshot.committed");  // committed on the source, maybe not captured yet
  spdlog::info("postgres source: {} re-snapshotted: {} rows staged as copy {}", table, *rows, id);
  return ResnapshotDone{*rows, id};
}

}  // namespace ferry::pg
