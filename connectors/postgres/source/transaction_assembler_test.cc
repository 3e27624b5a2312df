#include "connectors/postgres/source/transaction_assembler.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connectors/postgres/source/staged_copy.h"
#include "connectors/postgres/testing/memory_capture_target.h"
#include "gtest/gtest.h"

namespace ferry::pg {
namespace {

using testing::MemoryCaptureTarget;

class FakeCatalog final : public RelationCatalog {
 public:
  absl::StatusOr<std::vector<std::string>> TypeNames(const std::vector<TypeRef>& types) override {
    std::vector<std::string> names;
    for (const TypeRef& t : types) names.push_back(t.oid == 23 ? "integer" : "text");
    return names;
  }
  absl::StatusOr<TableDetails> Table(uint32_t) override { return TableDetails{{"id"}, {"id"}}; }
};

RelationMessage Relation(uint32_t id, int columns) {
  RelationMessage m;
  m.relation_id = id;
  m.schema = "public";
  m.name = absl::StrCat("t", id);
  m.columns.push_back({true, "id", 23, -1});
  for (int i = 1; i < columns; ++i) m.columns.push_back({false, absl::StrCat("c", i), 25, -1});
  return m;
}

v1::Tuple Row(int id, int columns) {
  v1::Tuple t;
  t.add_values()->set_text(absl::StrCat(id));
  for (int i = 1; i < columns; ++i) t.add_values()->set_text("v");
  return t;
}

class AssemblerTest : public ::testing::Test {
 protected:
  AssemblerTest() : relations_(&catalog_) {}

  void Make(AssemblerOptions options = {}) {
    options.origin_region = "east";
    assembler_ = std::make_unique<TransactionAssembler>(options, &relations_, &target_, &clock_);
  }
  absl::Status Feed(PgOutputMessage m) { return assembler_->Handle(std::move(m)); }
  void Begin(uint64_t commit) { ASSERT_TRUE(Feed(BeginMessage{commit, 5, 700}).ok()); }
  void Commit(uint64_t commit, uint64_t end) {
    ASSERT_TRUE(Feed(CommitMessage{0, commit, end, 5}).ok());
  }
  void Insert(uint32_t rel, int id, int columns = 2) {
    ASSERT_TRUE(Feed(InsertMessage{rel, Row(id, columns)}).ok());
  }

  FakeCatalog catalog_;
  RelationCache relations_;
  MemoryCaptureTarget target_;
  ManualClock clock_;
  std::unique_ptr<TransactionAssembler> assembler_;
};

TEST_F(AssemblerTest, SmallTransactionsShareOneAppendAtFlush) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(100);
  Insert(1, 1);
  Commit(100, 120);
  Begin(200);
  Insert(1, 2);
  Insert(1, 3);
  Commit(200, 220);
  EXPECT_EQ(target_.appends().size(), 0u);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto appends = target_.appends();
  ASSERT_EQ(appends.size(), 1u);
  EXPECT_EQ(appends[0].captured_position, 220u);
  ASSERT_EQ(appends[0].fragments.size(), 2u);
  const v1::Transaction& t = appends[0].fragments[1];
  EXPECT_EQ(t.source_position(), 200u);
  EXPECT_EQ(t.end_position(), 220u);
  EXPECT_EQ(t.origin_region(), "east");
  EXPECT_EQ(t.source_xid(), 700u);
  EXPECT_EQ(t.fragment(), 0u);
  EXPECT_TRUE(t.last_fragment());
  ASSERT_EQ(t.relations_size(), 1);
  EXPECT_EQ(t.relations(0).name(), "t1");
  EXPECT_EQ(t.relations(0).primary_key(0), "id");
  EXPECT_EQ(t.relations(0).columns(0).type_name(), "integer");
  EXPECT_EQ(t.changes_size(), 2);
  EXPECT_EQ(target_.CapturedPosition(), 220u);
}

TEST_F(AssemblerTest, LargeTransactionIsFragmentedAndBounded) {
  AssemblerOptions o;
  o.max_fragment_changes = 100;
  o.max_batch_bytes = 1;  // append every fragment as soon as it closes
  Make(o);
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(1000);
  for (int i = 0; i < 1050; ++i) Insert(1, i);
  // Ten full fragments were appended before the commit (the tenth when the 1001st change
  // arrived), with no captured position.
  auto appends = target_.appends();
  ASSERT_EQ(appends.size(), 10u);
  for (size_t i = 0; i < appends.size(); ++i) {
    EXPECT_EQ(appends[i].captured_position, 0u);
    EXPECT_EQ(appends[i].fragments[0].fragment(), i);
    EXPECT_FALSE(appends[i].fragments[0].last_fragment());
    EXPECT_EQ(appends[i].fragments[0].changes_size(), 100);
    EXPECT_EQ(appends[i].fragments[0].relations_size(), 1);
  }
  Commit(1000, 1010);
  ASSERT_TRUE(assembler_->Flush().ok());
  appends = target_.appends();
  ASSERT_EQ(appends.size(), 11u);
  EXPECT_EQ(appends[10].captured_position, 1010u);
  EXPECT_EQ(appends[10].fragments[0].fragment(), 10u);
  EXPECT_TRUE(appends[10].fragments[0].last_fragment());
  EXPECT_EQ(appends[10].fragments[0].changes_size(), 50);
}

TEST_F(AssemblerTest, ByteLimitClosesFragments) {
  AssemblerOptions o;
  o.max_fragment_bytes = 1000;
  Make(o);
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(10);
  for (int i = 0; i < 100; ++i) {
    v1::Tuple t = Row(i, 2);
    t.mutable_values(1)->set_text(std::string(300, 'x'));
    ASSERT_TRUE(Feed(InsertMessage{1, t}).ok());
  }
  Commit(10, 20);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto fragments = target_.fragments();
  EXPECT_GE(fragments.size(), 25u);
  for (const auto& f : fragments) EXPECT_LE(f.changes_size(), 4);
}

TEST_F(AssemblerTest, DuplicatesBelowCapturedAreSkipped) {
  Make();
  target_.SetCaptured(500);
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(400);  // captured before
  Insert(1, 1);
  Commit(400, 450);
  Begin(500);  // commit record starts exactly at the captured end: new
  Insert(1, 2);
  Commit(500, 520);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto fragments = target_.fragments();
  ASSERT_EQ(fragments.size(), 1u);
  EXPECT_EQ(fragments[0].source_position(), 500u);
  EXPECT_EQ(assembler_->stats().duplicates_skipped, 1u);
}

TEST_F(AssemblerTest, FerryOriginIsNotCapturedButAdvances) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(100);
  ASSERT_TRUE(Feed(OriginMessage{7, "ferry_west"}).ok());
  Insert(1, 1);
  Commit(100, 130);
  Begin(200);
  ASSERT_TRUE(Feed(OriginMessage{7, "someone_else"}).ok());
  Insert(1, 2);
  Commit(200, 230);
  Begin(300);
  ASSERT_TRUE(Feed(OriginMessage{7, "ferry_west"}).ok());
  Insert(1, 3);
  Commit(300, 330);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto fragments = target_.fragments();
  ASSERT_EQ(fragments.size(), 1u);
  EXPECT_EQ(fragments[0].source_position(), 200u);
  EXPECT_EQ(target_.CapturedPosition(), 330u);
  EXPECT_EQ(assembler_->stats().origin_skipped, 2u);
}

TEST_F(AssemblerTest, UpdateDeleteTruncateMessage) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  ASSERT_TRUE(Feed(Relation(2, 1)).ok());
  Begin(100);
  ASSERT_TRUE(Feed(UpdateMessage{1, 'K', Row(1, 2), Row(2, 2)}).ok());
  ASSERT_TRUE(Feed(UpdateMessage{1, 0, {}, Row(2, 2)}).ok());
  ASSERT_TRUE(Feed(DeleteMessage{1, 'O', Row(2, 2)}).ok());
  ASSERT_TRUE(Feed(TruncateMessage{{1, 2}, true, false}).ok());
  ASSERT_TRUE(Feed(LogicalMessage{true, 99, "p", "c"}).ok());
  ASSERT_TRUE(Feed(LogicalMessage{false, 99, "p", "c"}).ok());  // not transactional: ignored
  Commit(100, 110);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto f = target_.fragments();
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].changes_size(), 5);
  EXPECT_EQ(f[0].relations_size(), 2);
  EXPECT_TRUE(f[0].changes(0).old_is_key_only());
  EXPECT_TRUE(f[0].changes(0).has_old_tuple());
  EXPECT_FALSE(f[0].changes(1).has_old_tuple());
  EXPECT_FALSE(f[0].changes(2).old_is_key_only());
  EXPECT_EQ(f[0].changes(3).op(), v1::TRUNCATE);
  EXPECT_EQ(f[0].changes(3).truncate_relation_ids_size(), 2);
  EXPECT_TRUE(f[0].changes(3).truncate_cascade());
  EXPECT_EQ(f[0].changes(4).op(), v1::MESSAGE);
  EXPECT_EQ(f[0].changes(4).message_prefix(), "p");
}

TEST_F(AssemblerTest, SchemaChangeMidTransactionStartsANewFragment) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(100);
  Insert(1, 1, 2);
  ASSERT_TRUE(Feed(Relation(1, 3)).ok());  // ALTER TABLE ADD COLUMN inside the transaction
  Insert(1, 2, 3);
  Commit(100, 110);
  ASSERT_TRUE(assembler_->Flush().ok());
  auto f = target_.fragments();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_FALSE(f[0].last_fragment());
  EXPECT_TRUE(f[1].last_fragment());
  EXPECT_NE(f[0].relations(0).schema_hash(), f[1].relations(0).schema_hash());
  EXPECT_EQ(f[0].relations(0).columns_size(), 2);
  EXPECT_EQ(f[1].relations(0).columns_size(), 3);
  EXPECT_EQ(assembler_->stats().schema_changes, 1u);
}

TEST_F(AssemblerTest, TransactionsWaitingForTheirAppendKeepTheShapeTheirChangesHad) {
  // Fragments share the descriptions they refer to: a later shape of the table must not
  // reach those already closed.
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  ASSERT_TRUE(Feed(Relation(2, 2)).ok());
  Begin(100);
  Insert(1, 1, 2);
  Insert(2, 1, 2);
  Commit(100, 110);
  ASSERT_TRUE(Feed(Relation(1, 4)).ok());  // ALTER TABLE between the transactions
  Begin(200);
  Insert(1, 2, 4);
  Insert(2, 2, 2);
  Commit(200, 210);
  EXPECT_EQ(target_.appends().size(), 0u);  // both wait for the Flush
  ASSERT_TRUE(assembler_->Flush().ok());
  auto f = target_.fragments();
  ASSERT_EQ(f.size(), 2u);
  ASSERT_EQ(f[0].relations_size(), 2);
  ASSERT_EQ(f[1].relations_size(), 2);
  EXPECT_EQ(f[0].relations(0).columns_size(), 2);
  EXPECT_EQ(f[1].relations(0).columns_size(), 4);
  EXPECT_EQ(f[0].relations(1).columns_size(), 2);
  EXPECT_EQ(f[0].relations(1).SerializeAsString(), f[1].relations(1).SerializeAsString());
  // Shared, not copied: table 2's one description serves both; table 1 has two shapes.
  auto shared = target_.shared_relations();
  ASSERT_EQ(shared.size(), 2u);
  ASSERT_EQ(shared[0].size(), 2u);
  ASSERT_EQ(shared[1].size(), 2u);
  EXPECT_EQ(shared[0][1], shared[1][1]);
  EXPECT_NE(shared[0][0], shared[1][0]);
}

TEST_F(AssemblerTest, ProtocolViolationsAreDataLossAndCaptureNothing) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  EXPECT_EQ(Feed(InsertMessage{1, Row(1, 2)}).code(), absl::StatusCode::kDataLoss);
  Begin(100);
  EXPECT_EQ(Feed(InsertMessage{9, Row(1, 2)}).code(), absl::StatusCode::kDataLoss);
  absl::Status wrong_width = Feed(InsertMessage{1, Row(1, 5)});
  EXPECT_EQ(wrong_width.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(wrong_width.message(), "5 values for 2 columns"));
  EXPECT_EQ(Feed(BeginMessage{200, 0, 1}).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Feed(CommitMessage{0, 101, 110, 0}).code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(assembler_->Flush().ok());
  EXPECT_EQ(target_.fragment_count(), 0u);
}

TEST_F(AssemblerTest, HeartbeatAdvancesOnlyWhenIdleAndCaptured) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  ASSERT_TRUE(assembler_->Heartbeat(1000, false).ok());
  EXPECT_EQ(target_.CapturedPosition(), 1000u);
  // Rate limited: deferred until the interval passed.
  ASSERT_TRUE(assembler_->Heartbeat(1100, false).ok());
  EXPECT_EQ(target_.CapturedPosition(), 1000u);
  ASSERT_TRUE(assembler_->Tick().ok());
  EXPECT_EQ(target_.CapturedPosition(), 1000u);
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(assembler_->Tick().ok());
  EXPECT_EQ(target_.CapturedPosition(), 1100u);
  ASSERT_TRUE(assembler_->Heartbeat(1200, true).ok());  // the server wants a reply now
  EXPECT_EQ(target_.CapturedPosition(), 1200u);
  clock_.Advance(absl::Seconds(2));
  Begin(2000);
  Insert(1, 1);
  ASSERT_TRUE(assembler_->Heartbeat(3000, true).ok());  // transaction open: no advance
  EXPECT_EQ(target_.CapturedPosition(), 1200u);
  Commit(2000, 2010);
  ASSERT_TRUE(assembler_->Heartbeat(3000, true).ok());  // pending output: no advance
  EXPECT_EQ(target_.CapturedPosition(), 1200u);
  ASSERT_TRUE(assembler_->Flush().ok());
  ASSERT_TRUE(assembler_->Heartbeat(3000, true).ok());
  EXPECT_EQ(target_.CapturedPosition(), 3000u);
}

TEST_F(AssemblerTest, ResetDropsTheOpenTransaction) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(100);
  Insert(1, 1);
  assembler_->Reset();
  EXPECT_FALSE(assembler_->in_transaction());
  Begin(100);  // the server sends it again after a reconnect
  Insert(1, 1);
  Commit(100, 110);
  ASSERT_TRUE(assembler_->Flush().ok());
  EXPECT_EQ(target_.fragment_count(), 1u);
}

TEST_F(AssemblerTest, FailedAppendIsReturned) {
  Make();
  ASSERT_TRUE(Feed(Relation(1, 2)).ok());
  Begin(100);
  Insert(1, 1);
  Commit(100, 110);
  target_.FailNextAppend();
  EXPECT_EQ(assembler_->Flush().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(target_.CapturedPosition(), 0u);
}

// Re-snapshots (issue #14): the marker is followed by its table's TRUNCATE and rows from the
// staged copy, fragmented like any change, and the copy is deleted once durable; a marker whose
// copy is missing, corrupt or named by a hostile id is kept and marked copy_missing; an
// unsigned marker reads no file. Mutants: rows before the marker, the copy deleted before the
// append, a path built from an unchecked id, an unsigned marker honoured.
namespace resnapshot_test {

std::string SignedContent(const std::string& key, const std::string& payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(mac[i], absl::kZeroPad2));
  return hex + " " + payload;
}

std::string Payload(const std::string& id) {
  return absl::StrCat(R"({"v":1,"schema":"public","name":"t9","id":")", id, R"("})");
}

class Dir {
 public:
  Dir() {
    char tmpl[] = "/tmp/ferry-assembler-XXXXXX";
    path_ = mkdtemp(tmpl) != nullptr ? tmpl : "/nonexistent";
  }
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr char kId[] = "00112233445566778899aabbccddeeff";
const std::string kKey(32, 'k');

class ResnapshotAssemblerTest : public AssemblerTest {
 protected:
  void MakeWithCopies(size_t max_fragment_changes = 10000) {
    AssemblerOptions o;
    o.resnapshot_dir = dir_.path();
    o.max_fragment_changes = max_fragment_changes;
    Make(o);
    assembler_->SetMessageKeys({kKey});
  }
  std::string WriteCopy(int rows) {
    auto relation = BuildRelation(Relation(9, 2), catalog_);
    EXPECT_TRUE(relation.ok());
    const std::string path = dir_.path() + "/" + kId;
    auto w = StagedCopyWriter::Create(path, 1234, *relation);
    EXPECT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < rows; ++i) EXPECT_TRUE((*w)->Add(Row(i, 2)).ok());
    EXPECT_TRUE((*w)->Finish().ok());
    return path;
  }
  // One transaction holding just the marker with `content`; returns its changes.
  std::vector<v1::Change> CaptureMarker(const std::string& content) {
    lsn_ += 1000;
    Begin(lsn_);
    EXPECT_TRUE(Feed(LogicalMessage{true, lsn_, "ferry.resnapshot", content}).ok());
    Commit(lsn_, lsn_ + 20);
    EXPECT_TRUE(assembler_->Flush().ok());
    std::vector<v1::Change> changes;
    for (const auto& a : target_.appends()) {
      for (const auto& f : a.fragments) {
        for (const auto& c : f.changes()) changes.push_back(c);
      }
    }
    return changes;
  }
  Dir dir_;
  uint64_t lsn_ = 0;
};

TEST_F(ResnapshotAssemblerTest, TheMarkerIsFollowedByItsRowsAndTheCopyGoesOnceDurable) {
  MakeWithCopies(/*max_fragment_changes=*/10);
  const std::string path = WriteCopy(25);
  Begin(100);
  ASSERT_TRUE(
      Feed(LogicalMessage{true, 100, "ferry.resnapshot", SignedContent(kKey, Payload(kId))}).ok());
  Commit(100, 120);
  EXPECT_TRUE(std::filesystem::exists(path)) << "deleted before it was durable";
  ASSERT_TRUE(assembler_->Flush().ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  std::vector<v1::Change> changes;
  size_t fragments = 0;
  for (const auto& a : target_.appends()) {
    for (const auto& f : a.fragments) {
      ++fragments;
      for (const auto& c : f.changes()) {
        if (c.op() != v1::MESSAGE) {
          ASSERT_EQ(f.relations_size(), 1);
          EXPECT_EQ(f.relations(0).name(), "t9");
        }
        changes.push_back(c);
      }
    }
  }
  EXPECT_EQ(fragments, 3u);
  ASSERT_EQ(changes.size(), 27u);
  EXPECT_EQ(changes[0].op(), v1::MESSAGE);
  EXPECT_TRUE(changes[0].message_authenticated());
  EXPECT_EQ(changes[0].message_content(), Payload(kId));
  EXPECT_EQ(changes[1].op(), v1::TRUNCATE);
  EXPECT_EQ(changes[1].truncate_relation_ids(0), 9u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(changes[2 + i].op(), v1::INSERT);
    EXPECT_EQ(changes[2 + i].new_tuple().values(0).text(), absl::StrCat(i));
  }
  EXPECT_EQ(assembler_->stats().resnapshots, 1u);
}

TEST_F(ResnapshotAssemblerTest, AMissingCorruptOrHostilyNamedCopyMarksTheMarker) {
  MakeWithCopies();
  const std::string path = WriteCopy(3);
  std::string corrupt;
  {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    corrupt = s.str();
  }
  corrupt[corrupt.size() / 2] ^= 1;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << corrupt;
  }
  for (const std::string& id :
       {std::string(kId), std::string("ffffffffffffffffffffffffffffffff"),
        std::string("../../../../etc/passwd"), std::string("00112233445566778899AABBCCDDEEFF")}) {
    target_.ClearFragments();
    std::vector<v1::Change> changes = CaptureMarker(SignedContent(kKey, Payload(id)));
    ASSERT_EQ(changes.size(), 1u) << id;
    EXPECT_TRUE(changes[0].message_authenticated());
    EXPECT_TRUE(absl::StrContains(changes[0].message_content(), "\"copy_missing\":true"))
        << changes[0].message_content();
    EXPECT_TRUE(absl::StrContains(changes[0].message_content(), "\"name\":\"t9\""));
  }
  EXPECT_EQ(assembler_->stats().resnapshots_missing, 4u);
}

TEST_F(ResnapshotAssemblerTest, AnUnsignedMarkerReadsNoCopy) {
  MakeWithCopies();
  const std::string path = WriteCopy(3);
  for (const std::string& content : {Payload(kId), std::string(64, 'a') + " " + Payload(kId),
                                     SignedContent(std::string(32, 'x'), Payload(kId))}) {
    target_.ClearFragments();
    std::vector<v1::Change> changes = CaptureMarker(content);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_FALSE(changes[0].message_authenticated());
    EXPECT_TRUE(std::filesystem::exists(path));
  }
}

}  // namespace resnapshot_test

}  // namespace
}  // namespace ferry::pg
