// ferryd: the Ferry sidecar of one region. The only code that knows both the engine and the
// connectors: it declares the connectors' config sections when it loads the config (so that
// they are checked at start with the rest), builds the Postgres source and sink and hands them
// to the daemon.
//
//   ferryd --config FILE.yaml        run
//   ferryd --config FILE.yaml --check-config    validate the config and exit
//   ferryd --print-ddl-capture-sql               the schema-change capture's install script
//
// SIGTERM / SIGINT drain in-flight work (bounded by --drain; a standby's apply backlog is not
// drained: it stays in the inbound log) and exit 0. Exit 1: the config is invalid or
// the daemon could not start (the message names the cause).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cmd/postgres_options.h"
#include "cmd/verify_factories.h"
#include "connectors/postgres/common/postgres_config.h"
#include "connectors/postgres/sink/postgres_sink.h"
#include "connectors/postgres/source/ddl_capture.h"
#include "connectors/postgres/source/pg_quarantine.h"
#include "connectors/postgres/source/postgres_fence.h"
#include "connectors/postgres/source/postgres_source.h"
#include "connectors/s3/objects_wiring.h"
#include "engine/base/log_setup.h"
#include "engine/daemon/daemon.h"
#include "engine/daemon/file_quarantine.h"
#include "engine/daemon/no_database.h"

namespace {

constexpr char kUsage[] = R"(usage: ferryd --config FILE.yaml [--check-config]

Runs Ferry's sidecar for the region the config names. Keys: docs/config.md.
  --config FILE     the region's YAML config (required)
  --check-config    validate the config (and its secret files) and exit
  --drain SECONDS   how long SIGTERM may wait for the peer to acknowledge what a primary
                    captured (default 20); a standby never waits for its apply backlog
  --print-ddl-capture-sql
                    print the SQL that installs schema-change capture on a primary's
                    database, for a superuser to run once (docs/schema-changes.md)
  --version         print the version
)";

spdlog::level::level_enum Level(ferry::config::LogLevel level) {
  using L = ferry::config::LogLevel;
  switch (level) {
    case L::kTrace:
      return spdlog::level::trace;
    case L::kDebug:
      return spdlog::level::debug;
    case L::kInfo:
      return spdlog::level::info;
    case L::kWarn:
      return spdlog::level::warn;
    case L::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// The database's source, sink and fence (the postgres: section).
void AddPostgresFactories(const ferry::pg::PostgresConfig& pg, ferry::DaemonFactories* out) {
  ferry::DaemonFactories& factories = *out;
  factories.source =
      [pg](const ferry::config::Config& c,
           const ferry::PipelineContext&) -> absl::StatusOr<std::unique_ptr<ferry::Source>> {
    auto source = ferry::pg::PostgresSource::Create(ferry::CaptureOptions(pg, c));
    if (!source.ok()) return source.status();
    return std::unique_ptr<ferry::Source>(std::move(*source));
  };
  factories.sink =
      [pg](const ferry::config::Config& c,
           const ferry::PipelineContext& context) -> absl::StatusOr<std::unique_ptr<ferry::Sink>> {
    auto sink = ferry::PostgresSink::Open(ferry::ApplyOptions(pg, c, context));
    if (!sink.ok()) return sink.status();
    return std::unique_ptr<ferry::Sink>(std::move(*sink));
  };

  factories.fence =
      [pg](const ferry::config::Config&) -> absl::StatusOr<std::unique_ptr<ferry::DatabaseFence>> {
    return std::make_unique<ferry::pg::PostgresFence>(pg.ConnectionString());
  };
  factories.quarantine =
      [pg](
          const ferry::config::Config&) -> absl::StatusOr<std::unique_ptr<ferry::QuarantineStore>> {
    return std::make_unique<ferry::pg::PostgresQuarantine>(pg.ConnectionString());
  };
}

}  // namespace

// jemalloc (see cmake/FerryHelpers.cmake) reads this at start: give freed pages back to the
// system within a second, from a background thread, so that ferryd's RSS follows its load
// down (the default keeps dirty pages for 10 s). Unused when linked with another allocator.
extern "C" const char* malloc_conf;
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  double drain_seconds = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--print-ddl-capture-sql") {
      std::fwrite(ferry::pg::DdlCaptureSql().data(), 1, ferry::pg::DdlCaptureSql().size(), stdout);
      return 0;
    } else if (a == "--version") {
      std::puts("ferryd 0.1.0");
      return 0;
    } else if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check-config") {
      check_only = true;
    } else if (a == "--drain" && i + 1 < argc) {
      char* end = nullptr;
      drain_seconds = std::strtod(argv[++i], &end);
      if (*end != '\0' || drain_seconds < 0 || drain_seconds > 3600) {
        std::fprintf(stderr, "ferryd: --drain needs seconds between 0 and 3600\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "ferryd: unknown argument '%s'\n\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "ferryd: --config FILE.yaml is required\n\n%s", kUsage);
    return 2;
  }
#ifdef NDEBUG
  // Debian builds Abseil without NDEBUG, so every Mutex lock of a release ferryd would also
  // update Abseil's global lock-order graph (deadlock detection, for debug builds): 0.8-0.9% of
  // ferryd's samples at 2,000 transactions/s, plus the graph's own lock
  // (bench/side_by_side/FINDINGS.md, session 11). Debug builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif

  // Every connector section this ferryd links, read and checked with the rest of the file.
  ferry::pg::PostgresConfigSection postgres_section;
  ferry::s3::ObjectsConfigSection objects_section;
  auto config = ferry::config::LoadConfigFile(
      config_path, {.connectors = {&postgres_section, &objects_section}});
  if (!config.ok()) {
    std::fprintf(stderr, "ferryd: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  // A region replicates its database, its bucket, or both (DESIGN.md: objects: is valid with or
  // without postgres:); a config with neither replicates nothing.
  if (!postgres_section.present() && !objects_section.present()) {
    std::fprintf(stderr,
                 "ferryd: config %s: key 'postgres': is required unless the config has an "
                 "'objects:' section (a region replicates its database, its bucket, or both)\n",
                 config_path.c_str());
    return 1;
  }
  spdlog::set_level(Level(config->log_level));
  ferry::SetLogFormat(*spdlog::default_logger(), config->region,
                      config->log_format == ferry::config::LogFormat::kJson);
  for (const auto& w : config->warnings) spdlog::warn("config: {}", w);
  // The crash tests' switches (engine/base/kill_point.h): a process with one set kills or stops
  // itself at that step, a switchover's included.
  for (const char* test_only : {"FERRY_KILL_POINT", "FERRY_PAUSE_POINT"}) {
    const char* value = std::getenv(test_only);
    if (value != nullptr && *value != '\0') {
      spdlog::error("{}={} is set: this process kills or stops itself there (for tests only)",
                    test_only, value);
    }
  }
  if (check_only) {
    std::printf("config %s is valid\n", config_path.c_str());
    return 0;
  }

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const ferry::pg::PostgresConfig pg = postgres_section.config();
  ferry::DaemonFactories factories;
  if (!postgres_section.present()) {
    // A bucket-only region: the database pipelines carry the object path's events and run
    // with stand-ins (engine/daemon/no_database.h); no fence, no database verifier.
    spdlog::info("no postgres: section: this region replicates its bucket only");
    factories.source = ferry::NoDatabaseSource::Factory();
    factories.sink = ferry::NoDatabaseSink::Factory();
    // The object entries a rejoin keeps (no ferry.quarantine here): a file in the data dir.
    factories.quarantine = [](const ferry::config::Config& c)
        -> absl::StatusOr<std::unique_ptr<ferry::QuarantineStore>> {
      return std::make_unique<ferry::FileQuarantine>(
          (std::filesystem::path(c.data_dir) / "quarantine.pb").string());
    };
  } else {
    AddPostgresFactories(pg, &factories);
  }
  if (objects_section.present())
    ferry::s3::AddObjectFactories(objects_section.config(), &factories);

  if (postgres_section.present()) ferry::AddVerifyFactories(pg.ConnectionString(), &factories);
  auto daemon = ferry::Daemon::Start(*config, std::move(factories));
  if (!daemon.ok()) {
    spdlog::critical("cannot start: {}", daemon.status().ToString());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, draining for up to {}s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               drain_seconds);
  (*daemon)->Shutdown(absl::Seconds(drain_seconds));
  daemon->reset();
  return 0;
}
