#include "engine/http/http_server.h"

#include <civetweb.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
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
    case 401:
      return "Unauthorized";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
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
  server->max_body_bytes_ = options.max_body_bytes;
  mg_callbacks callbacks{};
  // Binding errors are returned below; civetweb would print them on stderr as well.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  // Every request goes to Dispatch before civetweb looks for a handler or a file: exact paths
  // are looked up in handlers_, everything else is a 404. A handler registered after mg_start
  // (mg_set_request_handler) would leave a moment in which civetweb answers with its own 404
  // page; the callback is in place before the first connection is accepted.
  callbacks.begin_request = [](mg_connection* connection) {
    return Dispatch(connection, mg_get_user_data(mg_get_context(connection)));
  };
  server->context_ = mg_start(&callbacks, server.get(), config);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  mg_server_port ports[4] = {};
  const int n = mg_get_server_ports(server->context_, 4, ports);
  if (n < 1 || ports[0].port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot learn the bound port of ", address));
  }
  server->port_ = ports[0].port;
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(const std::string& path, HttpHandler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[path] = std::move(handler);
}

void HttpServer::HandleOthers(HttpHandler handler) {
  absl::MutexLock lock(&mu_);
  others_ = std::move(handler);
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
  for (int i = 0; i < info->num_headers && i < 64; ++i) {
    if (info->http_headers[i].name == nullptr || info->http_headers[i].value == nullptr) continue;
    request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
        info->http_headers[i].value;
  }
  bool too_large = false;
  if (server->max_body_bytes_ > 0 && info->content_length >= 0 &&
      static_cast<uint64_t>(info->content_length) > server->max_body_bytes_) {
    too_large = true;  // refused from its declared length, unread
  } else if (server->max_body_bytes_ > 0) {
    char buffer[16384];
    while (true) {
      int n = mg_read(connection, buffer, sizeof(buffer));
      if (n <= 0) break;
      if (request.body.size() + static_cast<size_t>(n) > server->max_body_bytes_) {
        too_large = true;  // keep reading (and dropping) so the answer reaches the client
        continue;
      }
      request.body.append(buffer, static_cast<size_t>(n));
    }
  }
  HttpHandler handler;
  {
    absl::MutexLock lock(&server->mu_);
    auto it = server->handlers_.find(request.path);
    if (it != server->handlers_.end()) {
      handler = it->second;
    } else {
      handler = server->others_;
    }
  }
  HttpResponse response;
  if (too_large) {
    response = {413, absl::StrCat("body over ", server->max_body_bytes_, " bytes\n")};
  } else if (!handler) {
    response = {404, "not found\n"};
  } else {
    response = handler(request);
  }
  const std::string head = absl::StrFormat(
      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n\r\n",
      response.status, StatusText(response.status), response.content_type, response.body.size());
  mg_write(connection, head.data(), head.size());
  if (request.method != "HEAD") mg_write(connection, response.body.data(), response.body.size());
  // civetweb: a value of 1-999 means handled, with this status; 0 would make it go on and
  // answer a second time.
  return std::clamp(response.status, 1, 999);
}

}  // namespace ferry
