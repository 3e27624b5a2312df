// PostgresSourceTest: the fixture of the Postgres source's integration tests against a real
// Postgres 15 (tests/support/pg_cluster.h): one cluster for the suite; every test works in its
// own database, publication and slot, and captures into a MemoryCaptureTarget. Test-only.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "connectors/postgres/source/postgres_source.h"
#include "connectors/postgres/testing/memory_capture_target.h"
#include "engine/base/clock.h"
#include "engine/rows/copy_rows.h"
#include "gtest/gtest.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/pg_database_test.h"

namespace ferry::pg {

using ::ferry::testing::PgCluster;
using ::ferry::testing::PgClusterOptions;
using testing::MemoryCaptureTarget;

// A captured row change with its table resolved.
struct Captured {
  const v1::Transaction* txn;
  const v1::Change* change;
  const v1::Relation* relation;
};

class PostgresSourceTest : public ferry::testing::PgDatabaseTest<PostgresSourceTest> {
 public:
  static PgClusterOptions ClusterOptions() {
    return {.extra_config = {"wal_sender_timeout = 10s"}};
  }

 protected:
  void TearDown() override { StopSource().IgnoreError(); }

  PostgresSourceOptions Options() const {
    PostgresSourceOptions o;
    o.dsn = cluster_->dsn(db_);
    o.publication = "ferry";
    o.slot = absl::StrCat("s_", db_);
    o.origin_region = "east";
    o.snapshot = false;
    o.retained_bytes_interval = absl::Milliseconds(100);
    o.status_interval = absl::Milliseconds(100);
    o.min_backoff = absl::Milliseconds(50);
    o.max_backoff = absl::Milliseconds(500);
    return o;
  }

  void StartSource(const PostgresSourceOptions& options) {
    auto source = PostgresSource::Create(options);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
    stop_ = std::make_unique<StopSignal>();
    done_ = false;
    thread_ = std::thread([this] {
      run_status_ = source_->Run(target_, *stop_);
      done_ = true;
    });
  }

  absl::Status StopSource() {
    if (!thread_.joinable()) return run_status_;
    stop_->Stop();
    thread_.join();
    return run_status_;
  }

  // Polls `condition` until it holds or `timeout` passes.
  bool WaitUntil(const std::function<bool()>& condition,
                 absl::Duration timeout = absl::Seconds(60)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (condition()) return true;
      if (done_) return condition();
      absl::SleepFor(absl::Milliseconds(20));  // polling interval, not synchronization
    }
    return condition();
  }

  void Exec(const std::string& sql) {
    absl::Status s = cluster_->Exec(sql, db_);
    ASSERT_TRUE(s.ok()) << s << "\n" << sql;
  }
  std::vector<::ferry::testing::Row> Query(const std::string& sql) {
    auto rows = cluster_->Query(sql, db_);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::vector<::ferry::testing::Row>{};
  }

  // Waits until no walsender holds this test's slot (a stopped source's walsender may take a
  // moment to notice), so that it can be dropped.
  // (Not WaitUntil: that one gives up as soon as the source is done, which it is here.)
  void WaitForSlotInactive() {
    bool inactive = false;
    for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
         !inactive && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
      auto active = cluster_->QueryValue(
          absl::StrCat("SELECT active::text FROM pg_replication_slots WHERE slot_name = 's_", db_,
                       "'"),
          db_);
      inactive = active.ok() && active->has_value() && **active == "false";
    }
    ASSERT_TRUE(inactive) << "the slot stayed active";
  }

  // Captures one row of a new table t, then stops the source and waits until its slot is free
  // (for a test that then does something to the slot).
  void CaptureARowThenStop() {
    Exec("CREATE TABLE t (id int PRIMARY KEY)");
    StartSource(Options());
    ASSERT_TRUE(WaitUntil([&] { return source_->Health().connected; }));
    Exec("INSERT INTO t VALUES (1)");
    Sync();
    ASSERT_TRUE(StopSource().ok());
    ASSERT_NO_FATAL_FAILURE(WaitForSlotInactive());
  }

  // Emits a transactional logical message and waits until it is captured: everything
  // committed before it is then captured too.
  void Sync() {
    std::string token = absl::StrCat("sync-", ++syncs_);
    Exec(absl::StrCat("SELECT pg_logical_emit_message(true, 'test.sync', '", token, "')"));
    ASSERT_TRUE(WaitUntil([&] {
      for (const auto& f : target_.fragments()) {
        for (const auto& c : f.changes()) {
          if (c.op() == v1::MESSAGE && c.message_content() == token) return true;
        }
      }
      return false;
    })) << "not captured: "
        << token << "; source: " << run_status_ << " " << source_->Health().last_error;
  }

  // What was captured, snapshot rows (COPY changes) expanded into INSERTs as apply's careful
  // path reads them.
  std::vector<v1::Transaction> Fragments() const {
    std::vector<v1::Transaction> fragments = target_.fragments();
    for (v1::Transaction& f : fragments) EXPECT_TRUE(ExpandCopyChanges(&f).ok());
    return fragments;
  }

  // Row changes of `table` in capture order (from `fragments`, kept alive by the caller).
  static std::vector<Captured> ChangesOf(const std::vector<v1::Transaction>& fragments,
                                         const std::string& table) {
    std::vector<Captured> out;
    for (const auto& f : fragments) {
      for (const auto& c : f.changes()) {
        for (const auto& r : f.relations()) {
          if (r.relation_id() == c.relation_id() && r.name() == table && c.op() != v1::MESSAGE) {
            out.push_back({&f, &c, &r});
          }
        }
      }
    }
    return out;
  }

  static std::string Text(const v1::Value& v) {
    return v.has_null() ? "<null>" : v.has_unchanged_toast() ? "<toast>" : v.text();
  }

  MemoryCaptureTarget target_;
  ManualClock manual_clock_{absl::FromUnixSeconds(1'800'000'000)};  // outlives the source
  std::unique_ptr<PostgresSource> source_;
  std::unique_ptr<StopSignal> stop_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  absl::Status run_status_;
  int syncs_ = 0;
};

}  // namespace ferry::pg
