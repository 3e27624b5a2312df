#include "engine/http/http_server.h"

#include <civetweb.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ferry {
namespace {

// civetweb keeps process-wide state (mg_init_library); once, and never undone.
void InitCivetweb() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options) {
  const std::string& address = options.listen_address;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address must be HOST:PORT, got '", address, "'"));
  }
  InitCivetweb();
  std::unique_ptr<HttpServer> server(new HttpServer());
  const std::string threads = absl::StrCat(options.threads);
  // civetweb wants "HOST:PORT" for IPv4 and "[HOST]:PORT" for IPv6 (with a '+' prefix for
  // both); the address is passed as written.
  const char* config[] = {"listening_ports",
                          address.c_str(),
                          "num_threads",
                          threads.c_str(),
                          "enable_keep_alive",
                          "yes",
                          "request_timeout_ms",
                          "10000",
                          nullptr};
  mg_callbacks callbacks{};
  // Binding errors are returned below; civetweb would print them on stderr as well.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  server->context_ = mg_start(&callbacks, nullptr, config);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  mg_server_port ports[4] = {};
  const int n = mg_get_server_ports(server->context_, 4, ports);
  if (n < 1 || ports[0].port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot learn the bound port of ", address));
  }
  server->port_ = ports[0].port;
  // One catch-all handler: exact paths are looked up in handlers_, everything else is a 404.
  mg_set_request_handler(server->context_, "/", &HttpServer::Dispatch, server.get());
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(const std::string& path, HttpHandler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[path] = std::move(handler);
}

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  mg_stop(context_);  // joins civetweb's threads: no handler runs after this
  context_ = nullptr;
}

int HttpServer::Dispatch(mg_connection* connection, void* self) {
  auto* server = static_cast<HttpServer*>(self);
  const mg_request_info* info = mg_get_request_info(connection);
  HttpRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  HttpHandler handler;
  {
    absl::MutexLock lock(&server->mu_);
    auto it = server->handlers_.find(request.path);
    if (it != server->handlers_.end()) handler = it->second;
  }
  HttpResponse response;
  if (!handler) {
    response = {404, "not found\n"};
  } else {
    response = handler(request);
  }
  const std::string head = absl::StrFormat(
      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n\r\n",
      response.status, StatusText(response.status), response.content_type, response.body.size());
  mg_write(connection, head.data(), head.size());
  if (request.method != "HEAD") mg_write(connection, response.body.data(), response.body.size());
  return response.status;  // civetweb: a value > 0 means handled, with this status
}

}  // namespace ferry
