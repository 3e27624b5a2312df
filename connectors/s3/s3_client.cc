#include "connectors/s3/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "connectors/s3/s3_request.h"
#include "connectors/s3/xml_scan.h"
#include "engine/base/status_macros.h"

namespace ferry::s3 {

using internal::AddPutHeaders;
using internal::CheckKey;
using internal::Unquote;

namespace {

// The body of an error answer is kept only this long (it is XML of a few hundred bytes).
constexpr size_t kMaxErrorBody = 64 << 10;

struct Transfer {
  S3Client::Response* response;
  const std::function<absl::Status(std::string_view)>* on_data;
  absl::Status callback_error;
  bool delivered = false;
  std::string_view upload;
  // Set: supplies the upload's upload_size bytes instead of `upload`.
  const std::function<absl::StatusOr<size_t>(char*, size_t)>* producer = nullptr;
  uint64_t upload_size = 0;
  uint64_t uploaded = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    t->response->headers.clear();  // a new answer (after 100 Continue, or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    t->response->headers[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  // Stream only a successful answer (the status line was read by the header callback); an
  // error's XML is collected for the message.
  std::string_view chunk(data, size * n);
  if (t->on_data != nullptr && t->response->status >= 200 && t->response->status < 300) {
    absl::Status s = (*t->on_data)(chunk);
    t->delivered = true;
    if (!s.ok()) {
      t->callback_error = s;
      return 0;  // aborts the transfer
    }
    return chunk.size();
  }
  if (t->response->body.size() < kMaxErrorBody || t->on_data == nullptr) {
    t->response->body.append(chunk);
  }
  return chunk.size();
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->producer != nullptr) {
    if (t->uploaded == t->upload_size) return 0;
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size * n, t->upload_size - t->uploaded));
    absl::StatusOr<size_t> got = (*t->producer)(buffer, want);
    t->delivered = true;  // the producer's bytes cannot be asked for twice
    if (got.ok() && (*got == 0 || *got > want)) {
      got = absl::AbortedError(absl::StrCat("the streamed body ended after ", t->uploaded, " of ",
                                            t->upload_size, " bytes"));
    }
    if (!got.ok()) {
      t->callback_error = got.status();
      return CURL_READFUNC_ABORT;
    }
    t->uploaded += *got;
    return *got;
  }
  size_t len = std::min(size * n, t->upload.size() - t->uploaded);
  std::memcpy(buffer, t->upload.data() + t->uploaded, len);
  t->uploaded += len;
  return len;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->upload.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->uploaded = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// Called by curl about once a second and on progress: a non-zero answer aborts the transfer.
int OnProgress(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancelled)->load() ? 1 : 0;
}

bool Retryable(long status, const std::string& code) {
  return status == 500 || status == 502 || status == 503 || status == 504 || code == "SlowDown" ||
         code == "RequestTimeout" || code == "InternalError";
}

absl::Status ErrorOf(const S3Client::Request& request, const S3Client::Response& response) {
  std::string code = XmlText(response.body, "Code");
  if (code.empty() && request.no_body_answer && response.status == 404) code = "NoSuchKey";
  const std::string message =
      absl::StrCat(request.what(), ": HTTP ", response.status, code.empty() ? "" : " ", code);
  if (code == "BadDigest" || code == "XAmzContentSHA256Mismatch") {
    // The body is not what its signed hash says (corrupted on the way): send it again.
    return absl::AbortedError(absl::StrCat(message, " (the body differs from its signed hash)"));
  }
  switch (response.status) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 401:
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
    case 412:
      return absl::FailedPreconditionError(message);
    default:
      if (Retryable(response.status, code)) return absl::UnavailableError(message);
      return absl::InternalError(message);
  }
}

}  // namespace

namespace internal {

std::string Unquote(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    return etag.substr(1, etag.size() - 2);
  }
  if (absl::StartsWith(etag, "&quot;")) return Unquote(XmlUnescape(etag));
  return etag;
}

absl::Status CheckKey(const std::string& bucket, const std::string& key) {
  if (bucket.empty() || bucket.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat("bucket name '", bucket, "' is not 1-63 bytes"));
  }
  if (key.empty()) return absl::InvalidArgumentError("an object key may not be empty");
  if (key.size() > S3Client::kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("object key of ", key.size(), " bytes is longer than S3's 1024"));
  }
  return absl::OkStatus();
}

absl::Status AddPutHeaders(const PutOptions& options, std::map<std::string, std::string>* h) {
  auto clean = [](std::string_view v) { return v.find_first_of("\r\n") == std::string_view::npos; };
  if (!options.content_type.empty()) {
    if (!clean(options.content_type)) {
      return absl::InvalidArgumentError("content type holds a line break");
    }
    (*h)["content-type"] = options.content_type;
  }
  for (const auto& [name, value] : options.metadata) {
    if (name.empty() || !clean(name) || !clean(value) ||
        name.find_first_of(": \t") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("user metadata name '", absl::CEscape(name),
                                                     "' or its value is not a "
                                                     "valid header"));
    }
    (*h)["x-amz-meta-" + absl::AsciiStrToLower(name)] = value;
  }
  if (!options.content_md5.empty()) {
    if (options.content_md5.size() != 32 ||
        options.content_md5.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "content MD5 '", absl::CEscape(options.content_md5), "' is not 32 hex digits"));
    }
    (*h)["content-md5"] = absl::Base64Escape(absl::HexStringToBytes(options.content_md5));
  }
  return absl::OkStatus();
}

}  // namespace internal

namespace {

ObjectInfo InfoOf(const S3Client::Response& r) {
  ObjectInfo info;
  info.etag = Unquote(r.header("etag"));
  uint64_t size = 0;
  if (absl::SimpleAtoi(r.header("content-length"), &size)) info.size = size;
  info.version_id = r.header("x-amz-version-id");
  info.content_type = r.header("content-type");
  info.last_modified = r.header("last-modified");
  info.encryption = r.header("x-amz-server-side-encryption");
  if (info.encryption.empty() &&
      !r.header("x-amz-server-side-encryption-customer-algorithm").empty()) {
    info.encryption = "SSE-C";
  }
  for (const auto& [name, value] : r.headers) {
    if (absl::StartsWith(name, "x-amz-meta-")) {
      info.metadata[name.substr(strlen("x-amz-meta-"))] = value;
    }
  }
  return info;
}

// What a PUT's answer says of the version it made.
PutResult PutResultOf(const S3Client::Response& r) {
  return PutResult{.etag = Unquote(r.header("etag")), .version_id = r.header("x-amz-version-id")};
}

}  // namespace

S3Client::S3Client(const S3ClientOptions& options)
    : options_(options), clock_(options.clock != nullptr ? options.clock : Clock::Real()) {}

S3Client::~S3Client() {
  absl::MutexLock lock(&mu_);
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Open(const S3ClientOptions& options) {
  absl::string_view rest = options.endpoint;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", options.endpoint, "' is not http://host[:port]"));
  }
  if (rest.empty() || rest.find_first_of("/?#@ ") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint '", options.endpoint, "' must be scheme://host[:port], no path"));
  }
  if (options.credentials.access_key.empty() || options.credentials.secret_key.empty()) {
    return absl::InvalidArgumentError("S3 access key and secret key must not be empty");
  }
  if (options.max_attempts < 1) return absl::InvalidArgumentError("max_attempts must be >= 1");
  curl_global_init(CURL_GLOBAL_DEFAULT);  // idempotent and thread-safe in curl >= 7.84
  std::unique_ptr<S3Client> client(new S3Client(options));
  client->host_ = std::string(rest);
  return client;
}

uint64_t S3Client::requests_sent() const {
  absl::MutexLock lock(&mu_);
  return requests_sent_;
}

void* S3Client::TakeHandle() {
  {
    absl::MutexLock lock(&mu_);
    ++requests_sent_;
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void S3Client::GiveBack(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<S3Client::Response> S3Client::SendOnce(const Request& request, void* handle,
                                                      bool* delivered) {
  CURL* curl = static_cast<CURL*>(handle);
  curl_easy_reset(curl);  // keeps the connection cache
  std::string path = "/" + request.bucket;
  if (!request.key.empty()) absl::StrAppend(&path, "/", UriEncode(request.key, true));
  SignedRequest to_sign{.method = request.method,
                        .host = host_,
                        .path = path,
                        .query = request.query,
                        .headers = request.headers,
                        .payload_sha256 = request.unsigned_payload ? std::string("UNSIGNED-PAYLOAD")
                                                                   : Sha256Hex(request.body)};
  std::vector<std::string> headers =
      SignV4(to_sign, options_.credentials, options_.signing_region, clock_->Now());
  headers.push_back("Expect:");  // no 100-continue round trip
  // curl would add a form content type to a POST (and S3 would keep it as the object's).
  if (request.headers.count("content-type") == 0) headers.push_back("Content-Type:");
  curl_slist* list = nullptr;
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  std::string query = CanonicalQuery(request.query);
  std::string url = absl::StrCat(options_.endpoint, path, query.empty() ? "" : "?", query);

  Response response;
  Transfer transfer{.response = &response,
                    .on_data = request.on_data,
                    .upload = request.body,
                    .producer = request.on_upload,
                    .upload_size = request.upload_size};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);  // a key's "../" is a key, not a path step
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(
      curl, CURLOPT_LOW_SPEED_TIME,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(options_.stall_timeout))));
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &cancelled_);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
    if (request.on_upload == nullptr) {  // a producer's bytes cannot be read again
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &transfer);
    }
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(request.on_upload != nullptr ? request.upload_size
                                                                          : request.body.size()));
  } else if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  // The status must be known before the body streams: read it from the status line.
  struct StatusPeek {
    static size_t Header(char* data, size_t size, size_t n, void* user) {
      auto* t = static_cast<Transfer*>(user);
      absl::string_view line(data, size * n);
      if (absl::StartsWith(line, "HTTP/")) {
        size_t sp = line.find(' ');
        long code = 0;
        if (sp != absl::string_view::npos && line.size() >= sp + 4) {
          (void)absl::SimpleAtoi(line.substr(sp + 1, 3), &code);
        }
        t->response->status = code;
      }
      return OnHeader(data, size, n, user);
    }
  };
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, StatusPeek::Header);

  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  *delivered = transfer.delivered;
  if (!transfer.callback_error.ok()) return transfer.callback_error;
  if (rc == CURLE_ABORTED_BY_CALLBACK && cancelled_.load()) {
    return absl::CancelledError(absl::StrCat(request.what(), ": cancelled (the caller stops)"));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(request.what(), ": ", curl_easy_strerror(rc), " (", options_.endpoint, ")"));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

absl::StatusOr<S3Client::Response> S3Client::Send(const Request& request) {
  uint64_t seed;
  {
    absl::MutexLock lock(&mu_);
    seed = ++seed_;
  }
  Backoff backoff(options_.backoff, seed);
  absl::Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (cancelled_.load()) {
      return absl::CancelledError(absl::StrCat(request.what(), ": cancelled (the caller stops)"));
    }
    void* handle = TakeHandle();
    if (handle == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
    bool delivered = false;
    absl::StatusOr<Response> r = SendOnce(request, handle, &delivered);
    GiveBack(handle);
    if (r.ok() && r->status >= 200 && r->status < 300) return r;
    if (r.ok()) {
      last = ErrorOf(request, *r);
      if (!Retryable(r->status, XmlText(r->body, "Code"))) return last;
    } else {
      last = r.status();
      if (last.code() != absl::StatusCode::kUnavailable) return last;  // the callback's error
    }
    if (delivered) {  // part of a streamed body went in or out: the caller restarts
      return absl::Status(last.code(),
                          absl::StrCat(last.message(), " (not retried: a streamed body moved)"));
    }
    if (attempt < options_.max_attempts) {
      // In slices, so that a Cancel ends the wait within 100 ms too.
      const absl::Time until = clock_->Now() + backoff.Next();
      while (!cancelled_.load() && clock_->Now() < until) {
        clock_->SleepUntil(std::min(until, clock_->Now() + absl::Milliseconds(100)), nullptr);
      }
    }
  }
  return absl::UnavailableError(absl::StrCat(last.message(), " (after retries)"));
}

absl::Status S3Client::CreateBucket(const std::string& bucket) {
  absl::StatusOr<Response> r = Send(Request{.method = "PUT", .bucket = bucket});
  if (r.ok()) return absl::OkStatus();
  if (absl::StrContains(r.status().message(), "BucketAlreadyOwnedByYou")) return absl::OkStatus();
  return r.status();
}

absl::Status S3Client::SetVersioning(const std::string& bucket, bool enabled) {
  const std::string body = absl::StrCat(
      "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>",
      enabled ? "Enabled" : "Suspended", "</Status></VersioningConfiguration>");
  return Send(Request{.method = "PUT",
                      .bucket = bucket,
                      .query = {{"versioning", ""}},
                      .headers = {{"content-type", "application/xml"}},
                      .body = body})
      .status();
}

absl::StatusOr<std::string> S3Client::GetVersioning(const std::string& bucket) {
  FERRY_ASSIGN_OR_RETURN(
      Response r, Send(Request{.method = "GET", .bucket = bucket, .query = {{"versioning", ""}}}));
  return XmlText(r.body, "Status");
}

absl::StatusOr<PutResult> S3Client::PutObject(const std::string& bucket, const std::string& key,
                                              std::string_view body, const PutOptions& options) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  Request request{.method = "PUT",
                  .bucket = bucket,
                  .key = key,
                  .body = body,
                  .unsigned_payload = !options.content_md5.empty()};
  FERRY_RETURN_IF_ERROR(AddPutHeaders(options, &request.headers));
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  return PutResultOf(r);
}

absl::StatusOr<PutResult> S3Client::PutObjectStreamed(
    const std::string& bucket, const std::string& key, uint64_t size, const PutOptions& options,
    const std::function<absl::StatusOr<size_t>(char*, size_t)>& read) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  if (options.content_md5.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a streamed PUT of ", key, " needs the body's MD5 (content_md5)"));
  }
  Request request{.method = "PUT",
                  .bucket = bucket,
                  .key = key,
                  .on_upload = &read,
                  .upload_size = size,
                  .unsigned_payload = true};
  FERRY_RETURN_IF_ERROR(AddPutHeaders(options, &request.headers));
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  return PutResultOf(r);
}

absl::StatusOr<ObjectInfo> S3Client::HeadObject(const std::string& bucket, const std::string& key,
                                                const std::string& version_id) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  Request request{.method = "HEAD", .bucket = bucket, .key = key, .no_body_answer = true};
  if (!version_id.empty()) request.query.emplace_back("versionId", version_id);
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  return InfoOf(r);
}

absl::StatusOr<std::string> S3Client::GetObject(const std::string& bucket, const std::string& key,
                                                const std::string& version_id, ObjectInfo* info) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  Request request{.method = "GET", .bucket = bucket, .key = key};
  if (!version_id.empty()) request.query.emplace_back("versionId", version_id);
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  if (info != nullptr) *info = InfoOf(r);
  return std::move(r.body);
}

absl::StatusOr<ObjectInfo> S3Client::GetObjectStreamed(
    const std::string& bucket, const std::string& key, const std::string& version_id,
    const std::function<absl::Status(std::string_view)>& on_data) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  Request request{.method = "GET", .bucket = bucket, .key = key, .on_data = &on_data};
  if (!version_id.empty()) request.query.emplace_back("versionId", version_id);
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  return InfoOf(r);
}

absl::StatusOr<DeleteResult> S3Client::DeleteObject(const std::string& bucket,
                                                    const std::string& key,
                                                    const std::string& version_id) {
  FERRY_RETURN_IF_ERROR(CheckKey(bucket, key));
  Request request{.method = "DELETE", .bucket = bucket, .key = key};
  if (!version_id.empty()) request.query.emplace_back("versionId", version_id);
  FERRY_ASSIGN_OR_RETURN(Response r, Send(request));
  return DeleteResult{.version_id = r.header("x-amz-version-id"),
                      .delete_marker = r.header("x-amz-delete-marker") == "true"};
}

}  // namespace ferry::s3
