// Daemon: one region's ferryd, wired from its parts.
//
//   primary: Source -> LogCaptureTarget -> outbound DurableLog -> Shipper ==> peer
//   standby: peer ==> Receiver -> inbound DurableLog -> ApplyScheduler -> Sink
//   both:    admin gRPC service (status, pause, resume), Prometheus /metrics, log trimming
//
// The role and epoch come from RegionState (data_dir/region.state): the configured role is only
// the first one. The daemon knows connectors only through the Source and Sink interfaces;
// main() passes factories for them, so tests can wire the daemon to anything.
//
// Threads: Start() spawns the capture thread (primary) and the maintenance thread (trims logs,
// samples metrics); the shipper, receiver, apply scheduler, gRPC servers and metrics exposer run
// their own. Status(), Pause() and Resume() are called from gRPC threads and are thread-safe.
//
// Example (see engine/cmd/ferryd.cc):
//   FERRY_ASSIGN_OR_RETURN(auto daemon, Daemon::Start(config, factories));
//   WaitForSigterm();
//   daemon->Shutdown(absl::Seconds(20));
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/admin/admin_service.h"
#include "engine/api/sink.h"
#include "engine/api/source.h"
#include "engine/config/config.h"

namespace ferry {

class Metrics;

struct DaemonFactories {
  // Builds the region's change source (primary). Called once at start.
  std::function<absl::StatusOr<std::unique_ptr<Source>>(const config::Config&)> source;
  // Builds the region's apply target (standby). Called once at start.
  std::function<absl::StatusOr<std::unique_ptr<Sink>>(const config::Config&)> sink;
};

class Daemon final : public AdminBackend {
 public:
  // Opens the region state and logs, starts the listeners and the role's pipeline. Fails when
  // a listener cannot bind, the data_dir belongs to another region, or a log is corrupt; a
  // database that is down is not a start failure (the pipeline retries and status says so).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Daemon>> Start(const config::Config& config,
                                                                     DaemonFactories factories);
  ~Daemon() override;

  // Drains in-flight work for at most `drain`: the source stops capturing, the shipper gets
  // what was captured acknowledged, apply commits what was received. Then everything stops.
  // Idempotent.
  void Shutdown(absl::Duration drain);

  v1::StatusReply Status() override;
  bool Pause() override;
  bool Resume() override;

  // Bound ports (listen addresses may use port 0).
  int admin_port() const;
  int metrics_port() const;
  int replication_port() const;

 private:
  struct Parts;
  explicit Daemon(const config::Config& config);
  absl::Status StartParts(DaemonFactories factories);
  void CaptureLoop();
  void MaintenanceLoop();
  void Trim();
  void CountErrors();
  bool SetPaused(bool paused);

  const config::Config config_;
  const absl::Time started_;
  std::unique_ptr<Parts> parts_;
  // The metrics endpoint once it runs; hooks of the shipper and apply read it (they start
  // first, and a batch before then is simply not observed).
  std::atomic<Metrics*> metrics_{nullptr};
  StopSignal capture_stop_;
  absl::Notification maintenance_stop_;
  std::thread capture_thread_;
  std::thread maintenance_thread_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace ferry
