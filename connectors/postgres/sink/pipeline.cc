#include "connectors/postgres/sink/pipeline.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ferry::pg_sink {

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Connect(const std::string& dsn) {
  PGconn* conn = PQconnectdb(dsn.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("cannot connect to the target: ", message));
  }
  // Server notices ("schema already exists, skipping") are not errors; keep them off stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  std::unique_ptr<Pipeline> p(new Pipeline(conn));
  if (PQenterPipelineMode(conn) != 1) return p->ConnectionError("entering pipeline mode");
  return p;
}

Pipeline::~Pipeline() { PQfinish(conn_); }

absl::Status Pipeline::ConnectionError(const std::string& context) const {
  std::string message(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
  return absl::UnavailableError(absl::StrCat("target connection: ", context, ": ", message));
}

absl::Status Pipeline::Send(const std::string& sql,
                            const std::vector<std::optional<std::string>>& params,
                            ResultCallback callback) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0) != 1) {
    return ConnectionError("sending a statement");
  }
  pending_.push_back({false, std::move(callback)});
  return absl::OkStatus();
}

absl::Status Pipeline::SendPrepared(const std::string& sql,
                                    const std::vector<const std::string*>& params,
                                    ResultCallback callback) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("ferry_", next_statement_++);
    if (PQsendPrepare(conn_, name.c_str(), sql.c_str(), 0, nullptr) != 1) {
      return ConnectionError("preparing a statement");
    }
    // A prepare that fails (or is skipped after an earlier error) leaves no statement behind.
    pending_.push_back({false, [this, sql](StatementResult& r) {
                          if (!r.ok) prepared_.erase(sql);
                        }});
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string* p : params) values.push_back(p ? p->c_str() : nullptr);
  if (PQsendQueryPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(),
                          nullptr, nullptr, 0) != 1) {
    return ConnectionError("sending a prepared statement");
  }
  pending_.push_back({false, std::move(callback)});
  return absl::OkStatus();
}

absl::StatusOr<StatementResult> Pipeline::Copy(const std::string& copy_sql, std::string_view data) {
  if (absl::Status s = Sync(); !s.ok()) return s;
  if (PQexitPipelineMode(conn_) != 1) return ConnectionError("leaving pipeline mode");
  StatementResult r;
  auto fill_error = [&](PGresult* res) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    r.ok = false;
    r.sqlstate = state ? state : "";
    r.message =
        primary ? primary : std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
  };
  pg::PgResult start(PQexec(conn_, copy_sql.c_str()));
  if (start.get() == nullptr || broken()) return ConnectionError("starting COPY");
  if (start.status() == PGRES_COPY_IN) {
    constexpr size_t kChunk = 1 << 20;
    bool sent = true;
    for (size_t at = 0; at < data.size() && sent; at += kChunk) {
      const size_t n = std::min(kChunk, data.size() - at);
      sent = PQputCopyData(conn_, data.data() + at, static_cast<int>(n)) == 1;
    }
    if (!sent || PQputCopyEnd(conn_, nullptr) != 1) return ConnectionError("sending COPY data");
    // The COPY's own result, then nullptr.
    bool got = false;
    while (PGresult* raw = PQgetResult(conn_)) {
      pg::PgResult res(raw);
      if (got) continue;
      got = true;
      if (res.status() == PGRES_COMMAND_OK) {
        r.ok = true;
        int64_t n = 0;
        if (absl::SimpleAtoi(PQcmdTuples(raw), &n)) r.rows = n;
      } else {
        fill_error(raw);
      }
    }
    if (!got) return ConnectionError("reading the COPY result");
  } else {
    fill_error(start.get());
    while (PGresult* raw = PQgetResult(conn_)) PQclear(raw);
  }
  if (broken()) return ConnectionError("after COPY");
  if (PQenterPipelineMode(conn_) != 1) return ConnectionError("entering pipeline mode");
  return r;
}

void Pipeline::ForgetPrepared() {
  if (prepared_.empty()) return;
  prepared_.clear();
  // Statement names are never reused (next_statement_ grows), so a DEALLOCATE that is skipped
  // after an error leaves only unused statements behind.
  if (PQsendQueryParams(conn_, "DEALLOCATE ALL", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1) {
    pending_.push_back({false, nullptr});
  }
}

absl::Status Pipeline::Sync() {
  if (PQpipelineSync(conn_) != 1) return ConnectionError("sending a sync");
  pending_.push_back({true, nullptr});
  int nulls = 0;
  while (pending_head_ < pending_.size()) {
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) {
      // The separator after a statement's results; two in a row mean libpq has nothing more.
      if (broken() || ++nulls > 2) {
        pending_.clear();
        pending_head_ = 0;
        return ConnectionError("reading results");
      }
      continue;
    }
    nulls = 0;
    // Copy: a callback may queue nothing, but keep the entry stable regardless.
    Pending p = std::move(pending_[pending_head_]);
    pg::PgResult result(raw);
    const ExecStatusType st = result.status();
    if (p.sync) {
      if (st != PGRES_PIPELINE_SYNC) {
        if (broken()) return ConnectionError("reading results");
        continue;  // stray result; keep reading up to the sync
      }
      ++pending_head_;
      continue;
    }
    StatementResult r;
    r.ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    r.aborted = st == PGRES_PIPELINE_ABORTED;
    if (!r.ok && !r.aborted) {
      const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
      const char* primary = PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY);
      r.sqlstate = state ? state : "";
      r.message = primary ? primary
                          : std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)));
      if (state == nullptr && broken()) {
        pending_.clear();
        pending_head_ = 0;
        return ConnectionError("reading results");
      }
    }
    const char* tuples = PQcmdTuples(raw);
    if (tuples != nullptr && *tuples != '\0') {
      int64_t n = 0;
      if (absl::SimpleAtoi(tuples, &n)) r.rows = n;
    }
    r.result = std::move(result);
    ++pending_head_;
    if (p.callback) p.callback(r);
  }
  pending_.clear();
  pending_head_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<StatementResult> Pipeline::Run(
    const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  StatementResult out;
  bool got = false;
  absl::Status s = Send(sql, params, [&](StatementResult& r) {
    out = std::move(r);
    got = true;
  });
  if (!s.ok()) return s;
  s = Sync();
  if (!s.ok()) return s;
  if (!got) return absl::InternalError("no result for a statement");
  if (!out.ok) {
    const absl::StatusCode code =
        out.aborted ? absl::StatusCode::kAborted : pg::CodeForSqlState(out.sqlstate);
    return absl::Status(
        code, absl::StrCat("[", out.sqlstate, "] ", out.message, " (", sql.substr(0, 200), ")"));
  }
  return out;
}

}  // namespace ferry::pg_sink
