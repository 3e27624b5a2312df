// ServerCpu: CPU time (user + system) used so far by a Postgres cluster's processes: the
// postmaster and its direct children (backends, walsenders, apply workers, background
// writers). Read from /proc; Linux only. For benchmarks that want to see where the CPU of a
// run went, not for anything exact: a process that exits between two readings takes its CPU
// with it.
//
// Example:
//   ServerCpu cpu(pg->data_dir());
//   double before = cpu.Seconds();
//   ... run ...
//   double used = cpu.Seconds() - before;
#pragma once

#include <string>

namespace ferry::bench {

class ServerCpu {
 public:
  // `data_dir` holds postmaster.pid. Reads nothing yet.
  explicit ServerCpu(std::string data_dir) : data_dir_(std::move(data_dir)) {}

  // CPU seconds of the postmaster and its children now; 0 when the server is not running.
  double Seconds() const;

 private:
  const std::string data_dir_;
};

}  // namespace ferry::bench
