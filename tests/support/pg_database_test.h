// PgDatabaseTest: a GoogleTest suite on one throwaway Postgres cluster (PgCluster), started once
// for the suite, with a database of its own for each test, named after the test in lower case.
// Header-only (a suite's tests link GoogleTest, the support library does not).
//
// Example:
//   class FenceTest : public ferry::testing::PgDatabaseTest<FenceTest> {};
//   TEST_F(FenceTest, Raises) {
//     ASSERT_TRUE(Exec("CREATE TABLE t (id int)").ok());
//     PostgresFence fence(dsn());
//   }
// A suite that needs server settings defines `static PgClusterOptions ClusterOptions()` (the
// class named as `Suite`: a suite derived from it shares its cluster's settings); one that
// overrides SetUp() first calls ASSERT_NO_FATAL_FAILURE(PgDatabaseTest::SetUp()).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tests/support/pg_cluster.h"

namespace ferry::testing {

template <typename Suite>
class PgDatabaseTest : public ::testing::Test {
 public:
  static PgClusterOptions ClusterOptions() { return {}; }

 protected:
  static void SetUpTestSuite() {
    auto cluster = PgCluster::Start(Suite::ClusterOptions());
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    db_ = absl::AsciiStrToLower(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(cluster_->Exec(absl::StrCat("CREATE DATABASE ", db_), "postgres").ok());
  }

  // SQL in this test's database.
  absl::Status Exec(const std::string& sql) const { return cluster_->Exec(sql, db_); }
  std::string dsn() const { return cluster_->dsn(db_); }

  static inline PgCluster* cluster_ = nullptr;
  std::string db_;
};

}  // namespace ferry::testing
