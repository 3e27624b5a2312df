// notify_listener: records when Postgres notifications arrive, for scripts/bench.sh.
//
//   notify_listener CONNINFO CHANNEL...
//
// Connects with libpq, LISTENs on every CHANNEL, then prints one line per notification,
// "CHANNEL PAYLOAD UNIX_MICROS", flushed at once, where UNIX_MICROS is the wall-clock time at
// which the notification was read. A notification is sent when the notifying transaction
// commits, so on the target of a replication this is the moment a replicated row became
// visible (to within the wake-up of this process). Prints "ready" on stderr once listening; runs
// until SIGTERM or SIGINT. Exit codes: 0 after a signal, 1 on a connection error, 2 usage.
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

long long NowMicros() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: notify_listener CONNINFO CHANNEL...\n");
    return 2;
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "notify_listener: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 1;
  }
  for (int i = 2; i < argc; ++i) {
    char* quoted = PQescapeIdentifier(conn, argv[i], std::string(argv[i]).size());
    PGresult* r = PQexec(conn, (std::string("LISTEN ") + quoted).c_str());
    PQfreemem(quoted);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      std::fprintf(stderr, "notify_listener: LISTEN %s: %s", argv[i], PQerrorMessage(conn));
      PQfinish(conn);
      return 1;
    }
  }
  std::fprintf(stderr, "ready\n");

  int rc = 0;
  while (!g_stop) {
    pollfd pfd = {PQsocket(conn), POLLIN, 0};
    const int n = poll(&pfd, 1, 200);
    if (n < 0 && errno != EINTR) {
      rc = 1;
      break;
    }
    if (n <= 0) continue;
    const long long now = NowMicros();
    if (!PQconsumeInput(conn)) {
      std::fprintf(stderr, "notify_listener: %s", PQerrorMessage(conn));
      rc = 1;
      break;
    }
    while (PGnotify* note = PQnotifies(conn)) {
      std::printf("%s %s %lld\n", note->relname, note->extra[0] ? note->extra : "-", now);
      PQfreemem(note);
    }
    std::fflush(stdout);
  }
  PQfinish(conn);
  return rc;
}
