// TwoClustersTest: a gtest fixture with two throwaway Postgres 15 clusters per suite, one for
// the primary's side of a verify and one for the standby's (no ferryd between them: the tests
// write to each directly).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "tests/support/pg_cluster.h"

namespace ferry::consistency::testing {

class TwoClustersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto p = ferry::testing::PgCluster::Start();
    ASSERT_TRUE(p.ok()) << p.status();
    primary_ = p->release();
    auto s = ferry::testing::PgCluster::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    standby_ = s->release();
  }
  static void TearDownTestSuite() {
    delete primary_;
    delete standby_;
    primary_ = nullptr;
    standby_ = nullptr;
  }

  // Runs `sql` on both clusters.
  static void Both(const std::string& sql) {
    ASSERT_TRUE(primary_->Exec(sql).ok()) << sql;
    ASSERT_TRUE(standby_->Exec(sql).ok()) << sql;
  }

  static inline ferry::testing::PgCluster* primary_ = nullptr;
  static inline ferry::testing::PgCluster* standby_ = nullptr;
};

}  // namespace ferry::consistency::testing
