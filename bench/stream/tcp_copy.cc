#include "bench/stream/tcp_copy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ferry::bench {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

absl::Status Errno(const char* what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

absl::Status WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* data, size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, data, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("recv");
    if (r == 0) return absl::UnavailableError("connection closed early");
    data += r;
    n -= static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpSink>> TcpSink::Start() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status s = Errno("bind/listen");
    ::close(fd);
    return s;
  }
  std::unique_ptr<TcpSink> sink(new TcpSink(fd, ntohs(addr.sin_port)));
  sink->thread_ = std::thread([s = sink.get()] { s->Serve(); });
  return sink;
}

TcpSink::TcpSink(int listen_fd, int port) : listen_fd_(listen_fd), port_(port) {}

TcpSink::~TcpSink() {
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept() if no client came
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void TcpSink::Serve() {
  const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    status_ = Errno("accept");
    return;
  }
  char header[8];
  status_ = ReadAll(fd, header, sizeof(header));
  uint64_t remaining = 0;
  std::memcpy(&remaining, header, sizeof(remaining));
  std::vector<char> buffer(kChunk);
  while (status_.ok() && remaining > 0) {
    const ssize_t r = ::recv(fd, buffer.data(), std::min<uint64_t>(remaining, buffer.size()), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      status_ = r == 0 ? absl::UnavailableError("client closed early") : Errno("recv");
      break;
    }
    remaining -= static_cast<uint64_t>(r);
  }
  if (status_.ok()) {
    const char ack = 'k';
    status_ = WriteAll(fd, &ack, 1);
  }
  ::close(fd);
}

absl::StatusOr<absl::Duration> CopyOverTcp(int port, uint64_t bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  const sockaddr_in addr = Loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status s = Errno("connect");
    ::close(fd);
    return s;
  }
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Content does not matter to the proxy; a varied pattern all the same.
  std::vector<char> buffer(kChunk);
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<char>(i * 131 + (i >> 9));

  const absl::Time start = absl::Now();
  char header[8];
  std::memcpy(header, &bytes, sizeof(header));
  absl::Status status = WriteAll(fd, header, sizeof(header));
  for (uint64_t left = bytes; status.ok() && left > 0;) {
    const size_t n = std::min<uint64_t>(left, buffer.size());
    status = WriteAll(fd, buffer.data(), n);
    left -= n;
  }
  char ack = 0;
  if (status.ok()) status = ReadAll(fd, &ack, 1);
  const absl::Duration took = absl::Now() - start;
  ::close(fd);
  if (!status.ok()) return status;
  return took;
}

}  // namespace ferry::bench
