// HttpServer: ferryd's one HTTP listener (listen.metrics), serving /metrics, the health
// endpoints, and later the status page and a bucket's webhook. civetweb (Debian's
// libcivetweb-dev, the server prometheus-cpp itself embeds) does the HTTP; this class maps exact
// paths to handlers and answers 404 for anything else.
//
// Handlers run on civetweb's worker threads (a few at once): they must be thread-safe and
// quick, and they must not outlive what they capture: Stop() (or the destructor) returns only
// once no handler runs.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(auto http, HttpServer::Start({.listen_address = "127.0.0.1:9400"}));
//   http->Handle("/healthz", [](const HttpRequest&) { return HttpResponse{200, "ok\n"}; });
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct mg_context;
struct mg_connection;

namespace ferry {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string query;   // after '?', undecoded; "" when none
  // The request body, read only when HttpServerOptions::max_body_bytes > 0 (a longer body is
  // answered 413 without calling a handler).
  std::string body;
  // Request headers, names lowercase (a repeated header keeps its last value).
  std::map<std::string, std::string> headers;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  // HOST:PORT; port 0 picks a free port (see port()). IPv6 hosts in brackets: [::1]:9400.
  std::string listen_address = "127.0.0.1:0";
  int threads = 4;
  // Bodies up to this many bytes are read into HttpRequest::body; 0: bodies are not read.
  size_t max_body_bytes = 0;
};

class HttpServer {
 public:
  // Binds and starts serving. kUnavailable (naming the address) when it cannot bind,
  // kInvalidArgument for an address that is not HOST:PORT.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options);
  ~HttpServer();  // Stop()

  // Serves `path` (exact match) with `handler` from now on; replaces an earlier handler.
  // Thread-safe.
  void Handle(const std::string& path, HttpHandler handler);
  // Serves every path that has no handler of its own (instead of a 404). Thread-safe.
  void HandleOthers(HttpHandler handler);

  // Stops listening and waits for running handlers. Idempotent.
  void Stop();

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int Dispatch(mg_connection* connection, void* self);

  mg_context* context_ = nullptr;  // owned; null once stopped
  int port_ = 0;
  absl::Mutex mu_;
  std::map<std::string, HttpHandler> handlers_ ABSL_GUARDED_BY(mu_);
  HttpHandler others_ ABSL_GUARDED_BY(mu_);
  size_t max_body_bytes_ = 0;  // constant after Start
};

}  // namespace ferry
