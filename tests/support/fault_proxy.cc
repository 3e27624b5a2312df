// The proxy is one thread running an epoll loop over non-blocking sockets.
//
// A Connection joins a client socket (side 0) and a target socket (side 1). It has two
// Directions, indexed by their source side: 0 = client -> target, 1 = target -> client. A
// Direction reads from its source into a queue of chunks, each stamped with the time it may be
// written (read time + latency, never earlier than the chunk before it), and writes the queue's
// ready front to its destination as far as the token bucket allows. EOF is passed on with
// shutdown(SHUT_WR) once the queue is empty; an error on either socket resets both.
//
// Each loop iteration: take the controls (under the mutex) and acknowledge them, pump every
// connection (connect, read, write, close), arm a timerfd for the earliest chunk or token
// deadline, set each socket's epoll interest, wait. Sockets are level-triggered, so what a
// pump leaves unread is reported again -- except on a hung-up socket, which is taken out of
// epoll and is therefore pumped again through the timer (see Pump()).
//
// Control calls from other threads bump a version, wake the loop through an eventfd and wait
// until the loop has taken that version, so a setter's effect is in place when it returns.
#include "tests/support/fault_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry::testing {
namespace {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, as the timerfd
using TimePoint = Clock::time_point;

constexpr int kClient = 0;
constexpr int kTarget = 1;
// Reads per direction and pump, so that one busy connection does not starve the others.
constexpr int kMaxReadsPerPump = 16;
// With a bandwidth cap, wait for at least this many tokens (or the whole front chunk) before
// writing, instead of waking for every few bytes.
constexpr uint64_t kMinTokenWrite = 16 << 10;

// Controls set by other threads and taken by the loop.
struct Controls {
  Clock::duration latency{0};
  uint64_t bandwidth = 0;
  bool blackhole = false;
};

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Closes fd so that the peer sees a reset instead of an orderly EOF.
void CloseWithReset(int fd) {
  linger l{.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

struct Chunk {
  TimePoint ready;
  std::string data;
  size_t offset = 0;  // bytes of data already written
};

struct Connection;

// What an epoll event points at: a socket of a connection, or one of the loop's own fds.
struct Endpoint {
  Connection* conn = nullptr;  // null for the loop's own fds
  int side = 0;                // kClient / kTarget, or a tag for the loop's own fds
  int fd = -1;
  uint32_t registered = 0;  // current epoll interest
  bool in_epoll = false;
  bool readable = false;  // reported by the last epoll_wait
  bool writable = false;
  bool hung_up = false;  // EPOLLHUP: removed from epoll; reads and writes no longer block
};

struct Direction {
  std::deque<Chunk> queue;
  size_t queued = 0;
  bool src_eof = false;
  bool dst_shut = false;
  bool dst_blocked = false;  // the last write hit EAGAIN; wait for EPOLLOUT
  double tokens = 0;
  TimePoint refilled;
};

struct Connection {
  Endpoint ends[2];
  Direction dirs[2];
  bool connecting = false;  // non-blocking connect to the target in progress
  bool closed = false;      // fds closed; removed at the end of the iteration
};

}  // namespace

class FaultProxy::Loop {
 public:
  Loop(const FaultProxyOptions& options, sockaddr_storage target, socklen_t target_len)
      : options_(options), target_(target), target_len_(target_len) {}

  ~Loop() {
    Stop();
    for (int fd : {listen_fd_, epoll_fd_, wake_fd_, timer_fd_}) {
      if (fd >= 0) close(fd);
    }
  }

  absl::Status Init() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return Errno("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Errno("bind");
    }
    if (listen(listen_fd_, SOMAXCONN) != 0) return Errno("listen");
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return Errno("getsockname");
    }
    port_ = ntohs(addr.sin_port);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return Errno("epoll_create1");
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return Errno("eventfd");
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) return Errno("timerfd_create");
    listen_ep_ = {.side = kListenTag, .fd = listen_fd_};
    wake_ep_ = {.side = kWakeTag, .fd = wake_fd_};
    timer_ep_ = {.side = kTimerTag, .fd = timer_fd_};
    for (Endpoint* ep : {&listen_ep_, &wake_ep_, &timer_ep_}) Register(*ep, EPOLLIN);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  int port() const { return port_; }

  // Applies `change` to the controls and waits until the loop has taken it.
  template <typename F>
  void Control(F change) {
    uint64_t version;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      change();
      version = ++version_;
    }
    Wake();
    std::unique_lock<std::mutex> lock(mu_);
    taken_.wait(lock, [&] { return applied_ >= version || exited_; });
  }

  void SetLatency(absl::Duration d) {
    Control([&]() {
      controls_.latency = std::max(Clock::duration::zero(), absl::ToChronoNanoseconds(d));
    });
  }
  void SetBandwidth(uint64_t bps) {
    Control([&]() { controls_.bandwidth = bps; });
  }
  void SetBlackhole(bool on) {
    Control([&]() { controls_.blackhole = on; });
  }
  void DropConnections() {
    Control([&]() { drop_requested_ = true; });
  }
  void CorruptBytes(uint64_t count, ProxyDirection direction, uint64_t skip) {
    Control([&]() {
      for (int d : {0, 1}) {
        const bool chosen = direction == ProxyDirection::kBoth ||
                            (d == kClient) == (direction == ProxyDirection::kToTarget);
        if (chosen) pending_corruption_[d] = Corruption{.skip = skip, .count = count};
      }
    });
  }

  void Stop() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
    }
    Wake();
    std::lock_guard<std::mutex> join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

  FaultProxyStats stats() const {
    FaultProxyStats s;
    s.connections_accepted = accepted_.load();
    s.connections_open = open_.load();
    s.connections_dropped = dropped_.load();
    s.bytes_to_target = bytes_[kClient].load();
    s.bytes_to_client = bytes_[kTarget].load();
    s.bytes_corrupted = corrupted_.load();
    return s;
  }

 private:
  static constexpr int kListenTag = -1;
  static constexpr int kWakeTag = -2;
  static constexpr int kTimerTag = -3;

  struct Corruption {
    uint64_t skip = 0;
    uint64_t count = 0;
  };

  static absl::Status Errno(const char* what) {
    return absl::InternalError(absl::StrCat("FaultProxy: ", what, ": ", std::strerror(errno)));
  }

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }

  void Register(Endpoint& ep, uint32_t events) {
    epoll_event ev{.events = events, .data = {.ptr = &ep}};
    if (!ep.in_epoll) {
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ep.fd, &ev) == 0) ep.in_epoll = true;
    } else if (events != ep.registered) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, ep.fd, &ev);
    }
    ep.registered = events;
  }

  void Unregister(Endpoint& ep) {
    if (ep.in_epoll) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, ep.fd, nullptr);
    ep.in_epoll = false;
  }

  // --- the loop thread from here on ---

  void Run() {
    std::vector<epoll_event> events(256);
    while (true) {
      if (!TakeControls()) break;
      const TimePoint now = Clock::now();
      TimePoint deadline = TimePoint::max();
      for (auto& conn : conns_) {
        if (!conn->closed) Pump(*conn, now, deadline);
      }
      Sweep();
      ArmTimer(deadline);
      for (auto& conn : conns_) UpdateInterest(*conn);
      const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        Endpoint* ep = static_cast<Endpoint*>(events[i].data.ptr);
        const uint32_t e = events[i].events;
        if (ep->side == kListenTag) {
          AcceptAll();
        } else if (ep->side == kWakeTag || ep->side == kTimerTag) {
          uint64_t value;
          [[maybe_unused]] ssize_t r = read(ep->fd, &value, sizeof(value));
        } else if (!ep->conn->closed) {
          if (e & EPOLLERR) {
            Abort(*ep->conn);
            continue;
          }
          if (e & EPOLLIN) ep->readable = true;
          if (e & EPOLLOUT) ep->writable = true;
          if (e & EPOLLHUP) {
            // Reported whatever the interest; stop watching so a paused side cannot spin.
            // From here on nothing reports this socket again: Pump() keeps it moving.
            ep->hung_up = true;
            Unregister(*ep);
          }
        }
      }
    }
    for (auto& conn : conns_) {
      if (!conn->closed) Abort(*conn);
    }
    Sweep();
    std::unique_lock<std::mutex> lock(mu_);
    exited_ = true;
    taken_.notify_all();
  }

  // Takes the controls into the loop's copy and acknowledges them. False when stopping.
  bool TakeControls() {
    bool drop = false;
    uint64_t version;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return false;
      const uint64_t old_bandwidth = controls_now_.bandwidth;
      controls_now_ = controls_;
      if (controls_now_.bandwidth != old_bandwidth) bandwidth_changed_ = true;
      for (int d : {0, 1}) {
        if (pending_corruption_[d].has_value()) {
          corruption_[d] = *pending_corruption_[d];
          pending_corruption_[d].reset();
        }
      }
      drop = drop_requested_;
      drop_requested_ = false;
      version = version_;
    }
    if (drop) {
      // Connections still in the accept queue are connected from the client's point of
      // view, so they are reset too.
      AcceptAll();
      for (auto& conn : conns_) {
        if (!conn->closed) {
          Abort(*conn);
          dropped_.fetch_add(1);
        }
      }
      Sweep();
    }
    std::unique_lock<std::mutex> lock(mu_);
    applied_ = version;
    taken_.notify_all();
    return true;
  }

  void AcceptAll() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or out of fds: the listener reports again
      }
      SetNoDelay(fd);
      auto conn = std::make_unique<Connection>();
      for (int side : {kClient, kTarget}) {
        conn->ends[side].conn = conn.get();
        conn->ends[side].side = side;
      }
      conn->ends[kClient].fd = fd;
      const TimePoint now = Clock::now();
      for (Direction& dir : conn->dirs) {
        dir.refilled = now;
        dir.tokens = static_cast<double>(BurstBytes(controls_now_.bandwidth));
      }
      Register(conn->ends[kClient], 0);
      accepted_.fetch_add(1);
      open_.fetch_add(1);
      conns_.push_back(std::move(conn));
    }
  }

  // Starts the connection to the target. False when it failed (the connection is reset).
  bool ConnectTarget(Connection& conn) {
    const int fd = socket(target_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      Abort(conn);
      return false;
    }
    SetNoDelay(fd);
    conn.ends[kTarget].fd = fd;
    Register(conn.ends[kTarget], 0);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&target_), target_len_) == 0) {
      conn.connecting = false;
    } else if (errno == EINPROGRESS) {
      conn.connecting = true;
    } else {
      Abort(conn);
      return false;
    }
    return true;
  }

  // Moves what can move now; lowers `deadline` to when this connection next needs the loop
  // for a reason epoll cannot see (a chunk's time, tokens).
  void Pump(Connection& conn, TimePoint now, TimePoint& deadline) {
    const Controls& c = controls_now_;
    if (c.blackhole) return;
    Endpoint& target = conn.ends[kTarget];
    if (target.fd < 0 && !ConnectTarget(conn)) return;
    if (conn.connecting) {
      if (!target.writable && !target.hung_up) return;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(target.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        Abort(conn);
        return;
      }
      conn.connecting = false;
    }
    for (int src : {kClient, kTarget}) {
      if (!ReadInto(conn, src, now)) return;
    }
    for (int src : {kClient, kTarget}) {
      if (!WriteFrom(conn, src, now, deadline)) return;
    }
    for (Endpoint& ep : conn.ends) ep.readable = ep.writable = false;
    if (conn.dirs[0].dst_shut && conn.dirs[1].dst_shut) {
      Close(conn, /*reset=*/false);
      return;
    }
    // Invariant: when the loop blocks, every direction that can still move has a wakeup --
    // EPOLLIN on its source (level-triggered, so data left by kMaxReadsPerPump is reported
    // again), EPOLLOUT on a blocked destination, or the timer for a chunk's time or tokens.
    // A hung-up source has none of these: EPOLLHUP took it out of epoll, so neither the data
    // still in its receive buffer nor its EOF will ever be reported. Both are there at once
    // when the peer's FIN arrives after our shutdown(SHUT_WR) (the target's reply to a
    // client that half-closed). So while a hung-up source has room in its queue and its EOF
    // is not read, pump again right away. This cannot spin: recv on a hung-up socket never
    // blocks (it returns data, 0 or an error), so each such pump reads data, reaches EOF or
    // resets; and a full queue drains only by writes, which EPOLLOUT or the timer wake.
    for (int src : {kClient, kTarget}) {
      const Direction& dir = conn.dirs[src];
      if (conn.ends[src].hung_up && !dir.src_eof && dir.queued < options_.max_buffered_bytes) {
        deadline = std::min(deadline, now);
      }
    }
  }

  // Reads from side `src` into its direction's queue. False when the connection was reset.
  bool ReadInto(Connection& conn, int src, TimePoint now) {
    Endpoint& ep = conn.ends[src];
    Direction& dir = conn.dirs[src];
    if (!(ep.readable || ep.hung_up) || dir.src_eof) return true;
    for (int i = 0; i < kMaxReadsPerPump && dir.queued < options_.max_buffered_bytes; ++i) {
      const size_t want =
          std::min(options_.read_chunk_bytes, options_.max_buffered_bytes - dir.queued);
      std::string buf(want, '\0');
      const ssize_t n = recv(ep.fd, buf.data(), want, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Abort(conn);
        return false;
      }
      if (n == 0) {
        dir.src_eof = true;
        break;
      }
      buf.resize(static_cast<size_t>(n));
      Corrupt(src, buf);
      TimePoint ready = now + controls_now_.latency;
      if (!dir.queue.empty()) ready = std::max(ready, dir.queue.back().ready);
      dir.queued += buf.size();
      dir.queue.push_back(Chunk{.ready = ready, .data = std::move(buf)});
    }
    return true;
  }

  void Corrupt(int direction, std::string& buf) {
    Corruption& c = corruption_[direction];
    size_t i = 0;
    const size_t skip = static_cast<size_t>(std::min<uint64_t>(c.skip, buf.size()));
    c.skip -= skip;
    i += skip;
    for (; i < buf.size() && c.count > 0; ++i, --c.count) {
      buf[i] = static_cast<char>(buf[i] ^ 0x01);
      corrupted_.fetch_add(1);
    }
  }

  // Writes the ready front of direction `src` to the other side. False when reset.
  bool WriteFrom(Connection& conn, int src, TimePoint now, TimePoint& deadline) {
    const int dst = 1 - src;
    Endpoint& ep = conn.ends[dst];
    Direction& dir = conn.dirs[src];
    if (dir.dst_blocked && (ep.writable || ep.hung_up)) dir.dst_blocked = false;
    const uint64_t rate = controls_now_.bandwidth;
    const double burst = static_cast<double>(BurstBytes(rate));
    if (rate > 0) {
      if (bandwidth_changed_) dir.tokens = std::min(dir.tokens, burst);
      const double elapsed = std::chrono::duration<double>(now - dir.refilled).count();
      dir.tokens = std::min(burst, dir.tokens + elapsed * static_cast<double>(rate));
    }
    dir.refilled = now;
    while (!dir.queue.empty() && !dir.dst_blocked) {
      Chunk& front = dir.queue.front();
      if (front.ready > now) {
        deadline = std::min(deadline, front.ready);
        break;
      }
      size_t len = front.data.size() - front.offset;
      if (rate > 0) {
        const double need = std::min<double>(static_cast<double>(kMinTokenWrite),
                                             std::min(burst, static_cast<double>(len)));
        if (dir.tokens < need) {
          const double wait_s = (need - dir.tokens) / static_cast<double>(rate);
          deadline = std::min(deadline, now +
                                            std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(wait_s)) +
                                            std::chrono::microseconds(1));
          break;
        }
        len = std::min(len, static_cast<size_t>(dir.tokens));
      }
      const ssize_t n = send(ep.fd, front.data.data() + front.offset, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          dir.dst_blocked = true;
          break;
        }
        Abort(conn);
        return false;
      }
      front.offset += static_cast<size_t>(n);
      dir.queued -= static_cast<size_t>(n);
      if (rate > 0) dir.tokens -= static_cast<double>(n);
      bytes_[src].fetch_add(static_cast<uint64_t>(n));
      if (front.offset == front.data.size()) dir.queue.pop_front();
    }
    if (dir.queue.empty() && dir.src_eof && !dir.dst_shut) {
      shutdown(ep.fd, SHUT_WR);
      dir.dst_shut = true;
    }
    return true;
  }

  void UpdateInterest(Connection& conn) {
    if (conn.closed) return;
    const bool paused = controls_now_.blackhole;
    for (int side : {kClient, kTarget}) {
      Endpoint& ep = conn.ends[side];
      if (ep.fd < 0 || ep.hung_up) continue;
      uint32_t events = 0;
      const Direction& out = conn.dirs[side];     // reads from this side
      const Direction& in = conn.dirs[1 - side];  // writes to this side
      const bool target_ready = conn.ends[kTarget].fd >= 0 && !conn.connecting;
      if (!paused && target_ready && !out.src_eof && out.queued < options_.max_buffered_bytes) {
        events |= EPOLLIN;
      }
      if (!paused && (in.dst_blocked || (side == kTarget && conn.connecting))) events |= EPOLLOUT;
      Register(ep, events);
    }
  }

  void ArmTimer(TimePoint deadline) {
    bandwidth_changed_ = false;
    itimerspec spec{};
    if (deadline != TimePoint::max()) {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
      spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    }
    timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  void Abort(Connection& conn) { Close(conn, /*reset=*/true); }

  void Close(Connection& conn, bool reset) {
    if (conn.closed) return;
    for (Endpoint& ep : conn.ends) {
      if (ep.fd < 0) continue;
      Unregister(ep);
      if (reset) {
        CloseWithReset(ep.fd);
      } else {
        close(ep.fd);
      }
      ep.fd = -1;
    }
    conn.closed = true;
    open_.fetch_sub(1);
  }

  // Frees closed connections. Only between epoll batches: an event may still point at one.
  void Sweep() {
    conns_.remove_if([](const std::unique_ptr<Connection>& c) { return c->closed; });
  }

  // Constant after construction.
  const FaultProxyOptions options_;
  const sockaddr_storage target_;
  const socklen_t target_len_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int timer_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex join_mu_;  // serializes Stop()'s join

  // Protected by mu_: written by control calls, taken by the loop. (std::mutex rather than
  // absl::Mutex: Debian's shared Abseil is not built with TSan, which then reports false
  // races on everything an absl::Mutex guards.)
  std::mutex mu_;
  std::condition_variable taken_;  // signalled when applied_ or exited_ changes
  Controls controls_;
  std::optional<Corruption> pending_corruption_[2];
  bool drop_requested_ = false;
  bool stopping_ = false;
  bool exited_ = false;
  uint64_t version_ = 0;
  uint64_t applied_ = 0;

  // Owned by the loop thread.
  Endpoint listen_ep_, wake_ep_, timer_ep_;
  Controls controls_now_;
  bool bandwidth_changed_ = false;
  Corruption corruption_[2];
  std::list<std::unique_ptr<Connection>> conns_;

  // Statistics: written by the loop, read by anyone.
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> open_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> corrupted_{0};
  std::atomic<uint64_t> bytes_[2] = {0, 0};  // indexed by source side
};

uint64_t FaultProxy::BurstBytes(uint64_t bytes_per_second) {
  return std::max<uint64_t>(bytes_per_second / 50, 1500);
}

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& target_host,
                                                              int target_port,
                                                              const FaultProxyOptions& options) {
  if (target_port <= 0 || target_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("FaultProxy: bad port ", target_port));
  }
  if (options.max_buffered_bytes == 0 || options.read_chunk_bytes == 0) {
    return absl::InvalidArgumentError("FaultProxy: buffer sizes must be positive");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(target_port);
  if (int rc = getaddrinfo(target_host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("FaultProxy: resolve ", target_host, ": ", gai_strerror(rc)));
  }
  sockaddr_storage target{};
  const socklen_t target_len = found->ai_addrlen;
  std::memcpy(&target, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  auto loop = std::make_unique<Loop>(options, target, target_len);
  if (absl::Status s = loop->Init(); !s.ok()) return s;
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(loop)));
}

FaultProxy::FaultProxy(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}
FaultProxy::~FaultProxy() { Stop(); }

int FaultProxy::port() const { return loop_->port(); }
std::string FaultProxy::address() const { return absl::StrCat("127.0.0.1:", port()); }
void FaultProxy::SetLatency(absl::Duration one_way) { loop_->SetLatency(one_way); }
void FaultProxy::SetBandwidth(uint64_t bytes_per_second) { loop_->SetBandwidth(bytes_per_second); }
void FaultProxy::SetBlackhole(bool on) { loop_->SetBlackhole(on); }
void FaultProxy::DropConnections() { loop_->DropConnections(); }
void FaultProxy::CorruptBytes(uint64_t count, ProxyDirection direction, uint64_t skip) {
  loop_->CorruptBytes(count, direction, skip);
}
void FaultProxy::Stop() { loop_->Stop(); }
FaultProxyStats FaultProxy::stats() const { return loop_->stats(); }

}  // namespace ferry::testing
