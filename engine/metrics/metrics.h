// Metrics: ferryd's Prometheus endpoint (prometheus-cpp) at listen.metrics.
//
// Most series are read from the daemon's status at scrape time (StatusCollector), so a metric
// and `ferryctl status` can never disagree. Distributions that must be observed as they happen
// (apply latency, batch sizes) and error counters live in the registry and are fed by the
// daemon. The names are an operator contract: deploy/grafana and deploy/prometheus use them;
// docs/operations.md ("Metrics") lists them.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/admin.pb.h"

namespace ferry {

// Engine counters that are not part of StatusReply, read at scrape time.
struct EngineCounters {
  uint64_t captured_transactions = 0;
  uint64_t outbound_appended_records = 0;
  uint64_t outbound_appended_bytes = 0;
  uint64_t outbound_disk_bytes = 0;
  uint64_t inbound_appended_records = 0;
  uint64_t inbound_appended_bytes = 0;
  uint64_t inbound_disk_bytes = 0;
  uint64_t stream_wire_bytes = 0;
  uint64_t stream_raw_bytes = 0;
  uint64_t stream_batches = 0;
  uint64_t applied_transactions = 0;
};

class Metrics {
 public:
  // The registry and its collectors. Serve Scrape() at /metrics (the daemon's HttpServer does).
  // `status` and `counters` are called at each scrape, from the HTTP server's threads.
  [[nodiscard]] static std::unique_ptr<Metrics> Create(std::function<v1::StatusReply()> status,
                                                       std::function<EngineCounters()> counters);

  // Every series in the Prometheus text exposition format (version 0.0.4). Thread-safe.
  std::string Scrape() const;

  // Observed as they happen; thread-safe.
  void ObserveApplyLatency(double seconds) { apply_latency_->Observe(seconds); }
  void ObserveBatchRecords(double records) { batch_records_->Observe(records); }
  // The object path (docs/objects.md): bucket capture to bucket apply, per applied event; and
  // its failures by kind (the status code's name, e.g. "unavailable", "permission_denied").
  void ObserveObjectLatency(double seconds) { object_latency_->Observe(seconds); }
  void CountObjectError(const std::string& kind);
  // Counts an error of a kind ("source", "stream", "apply", "log", "config", "admin").
  void CountError(const std::string& kind);

  // A verify ended (docs/verify.md): `result` is "equal", "different" or "error"; the counts are
  // those of an equal or different verify (0 on error). The last verify's time and outcome are
  // read from the status (StatusReply.last_verify). Thread-safe.
  void RecordVerify(const std::string& result, uint64_t rows, uint64_t bytes);

  // The content type of Scrape()'s text.
  static constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

 private:
  Metrics() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> status_collector_;
  prometheus::Histogram* apply_latency_ = nullptr;
  prometheus::Histogram* batch_records_ = nullptr;
  prometheus::Family<prometheus::Counter>* errors_ = nullptr;
  prometheus::Histogram* object_latency_ = nullptr;
  prometheus::Family<prometheus::Counter>* object_errors_ = nullptr;
  prometheus::Family<prometheus::Counter>* verify_runs_ = nullptr;
  prometheus::Counter* verify_rows_ = nullptr;
  prometheus::Counter* verify_bytes_ = nullptr;
};

}  // namespace ferry
