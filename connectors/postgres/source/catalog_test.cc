// Unit tests of the catalog's pure parts (the lookups themselves run against Postgres in
// postgres_source_integration_test.cc).
#include "connectors/postgres/source/catalog.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::pg {
namespace {

std::string Visible(uint32_t xid, const char* snapshot) {
  absl::StatusOr<bool> visible = VisibleInSnapshot(xid, snapshot);
  if (!visible.ok()) return visible.status().ToString();
  return *visible ? "visible" : "invisible";
}

TEST(VisibleInSnapshotTest, CompletedBelowXmaxAndNotInProgressIsVisible) {
  EXPECT_EQ(Visible(5, "10:20:12,15"), "visible");     // below xmin
  EXPECT_EQ(Visible(11, "10:20:12,15"), "visible");    // completed between xmin and xmax
  EXPECT_EQ(Visible(12, "10:20:12,15"), "invisible");  // still in progress
  EXPECT_EQ(Visible(20, "10:20:12,15"), "invisible");  // not completed as of xmax
  EXPECT_EQ(Visible(25, "10:20:"), "invisible");       // committed, not yet visible
  EXPECT_EQ(Visible(19, "10:20:"), "visible");
}

TEST(VisibleInSnapshotTest, TheFullIdIsTheOneNearestToXmaxAcrossAnEpoch) {
  // xmax just past the wrap (epoch 1): xid 0xFFFFFFF0 is epoch 0's, completed and not in
  // progress, so visible (read as epoch 1's it would lie beyond xmax).
  EXPECT_EQ(Visible(0xFFFFFFF0u, "4294967276:4294967301:4294967290"), "visible");
  EXPECT_EQ(Visible(0xFFFFFFF0u, "4294967276:4294967301:4294967280"), "invisible");
  // xmax just before the wrap (epoch 0): xid 3 is epoch 1's, beyond xmax, so not visible
  // (read as epoch 0's it would lie below xmin).
  EXPECT_EQ(Visible(3, "4294967000:4294967290:"), "invisible");
  // Both in epoch 2.
  EXPECT_EQ(Visible(7, "8589934592:8589934600:8589934599"), "invisible");
  EXPECT_EQ(Visible(5, "8589934592:8589934600:8589934599"), "visible");
}

TEST(VisibleInSnapshotTest, AnUnreadableSnapshotIsAnError) {
  for (const char* bad : {"", "10", "10:20", "a:20:", "30:20:", "10:20:x", "10:20:1,,2"}) {
    EXPECT_EQ(VisibleInSnapshot(5, bad).status().code(), absl::StatusCode::kInternal) << bad;
  }
}

}  // namespace
}  // namespace ferry::pg
