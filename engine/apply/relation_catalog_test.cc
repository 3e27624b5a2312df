// The relation catalog's contract: a transaction it parses is the one protobuf parses, whatever
// the order of its fields; transactions carrying the same description share one parse; a payload
// protobuf rejects it rejects too (truncated at every byte, garbage, a broken description); lent
// descriptions outlive their transactions, their holders and the catalog's own bound.
#include "engine/apply/relation_catalog.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/apply/apply_group.h"
#include "engine/apply/inbound_reader.h"
#include "google/protobuf/util/message_differencer.h"

namespace ferry {
namespace {

v1::Relation Table(uint32_t id, const std::string& name, int columns = 3) {
  v1::Relation r;
  r.set_relation_id(id);
  r.set_schema("public");
  r.set_name(name);
  for (int i = 0; i < columns; ++i) {
    v1::Column* c = r.add_columns();
    c->set_name(absl::StrCat("c", i));
    c->set_part_of_key(i == 0);
  }
  r.set_schema_hash(0x1234 + id);
  r.add_primary_key("c0");
  return r;
}

v1::Transaction Txn(const std::vector<v1::Relation>& relations, int changes = 2) {
  v1::Transaction t;
  t.set_origin_region("east");
  t.set_source_position(4242);
  t.set_commit_time_us(17);
  t.set_last_fragment(true);
  for (const auto& r : relations) *t.add_relations() = r;
  for (int i = 0; i < changes; ++i) {
    v1::Change* c = t.add_changes();
    c->set_op(v1::INSERT);
    c->set_relation_id(relations.empty() ? 1 : relations[i % relations.size()].relation_id());
    c->mutable_new_tuple()->add_values()->set_text(absl::StrCat("v", i));
  }
  t.set_epoch(3);
  return t;
}

// Parses `payload` with the catalog, checks it against protobuf's own parse and returns the lent
// relations' addresses (the transaction is returned its relations before it goes).
std::vector<const v1::Relation*> ParseAndCompare(RelationCatalog& catalog,
                                                 const std::string& payload) {
  v1::Transaction expected;
  EXPECT_TRUE(expected.ParseFromString(payload));
  v1::Transaction txn;
  LentRelations lent;
  EXPECT_TRUE(catalog.Parse(payload, &txn, &lent));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(txn, expected))
      << txn.DebugString() << "\nexpected\n"
      << expected.DebugString();
  std::vector<const v1::Relation*> addresses;
  for (const auto& r : txn.relations()) addresses.push_back(&r);
  EXPECT_EQ(lent.size(), static_cast<size_t>(txn.relations_size()));
  lent.Return(&txn);
  EXPECT_EQ(txn.relations_size(), 0);
  return addresses;
}

TEST(RelationCatalogTest, AParsedTransactionIsTheOneProtobufParsesInAnyFieldOrder) {
  RelationCatalog catalog;
  const v1::Transaction two = Txn({Table(1, "accounts"), Table(2, "history")});
  ParseAndCompare(catalog, two.SerializeAsString());
  ParseAndCompare(catalog, Txn({}).SerializeAsString());  // no relations
  ParseAndCompare(catalog, std::string());                // an empty transaction

  // Relations after the changes and between other fields, and an unknown field on either side:
  // protobuf accepts any order, and so must the catalog, keeping the relations' own order.
  v1::Transaction head = Txn({}, 3), one, other;
  *one.add_relations() = Table(1, "accounts");
  *other.add_relations() = Table(7, "tellers", 40);
  v1::Transaction tail;
  tail.set_snapshot(true);
  const std::string unknown = std::string("\xa8\x06\x05", 3);  // field 101, varint 5
  const std::string mixed =
      absl::StrCat(unknown, other.SerializeAsString(), head.SerializeAsString(),
                   one.SerializeAsString(), unknown, tail.SerializeAsString());
  const auto addresses = ParseAndCompare(catalog, mixed);
  ASSERT_EQ(addresses.size(), 2u);
}

TEST(RelationCatalogTest, TransactionsCarryingTheSameDescriptionShareOneParse) {
  RelationCatalog catalog;
  const v1::Relation accounts = Table(1, "accounts");
  const auto first =
      ParseAndCompare(catalog, Txn({accounts, Table(2, "history")}).SerializeAsString());
  const auto second =
      ParseAndCompare(catalog, Txn({Table(2, "history"), accounts}).SerializeAsString());
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(first[0], second[1]);
  EXPECT_EQ(first[1], second[0]);
  EXPECT_EQ(catalog.entries(), 2u);
  // A new shape of a table is another description.
  v1::Relation widened = Table(1, "accounts", 4);
  const auto third = ParseAndCompare(catalog, Txn({widened}).SerializeAsString());
  ASSERT_EQ(third.size(), 1u);
  EXPECT_NE(third[0], first[0]);
  EXPECT_EQ(third[0]->columns_size(), 4);
  EXPECT_EQ(first[0]->columns_size(), 3);
  EXPECT_EQ(catalog.entries(), 3u);
}

TEST(RelationCatalogTest, APayloadProtobufRejectsIsRejected) {
  RelationCatalog catalog;
  const std::string whole =
      Txn({Table(1, "accounts"), Table(2, "history", 12)}, 5).SerializeAsString();
  int rejected = 0;
  for (size_t n = 0; n <= whole.size(); ++n) {
    const std::string cut = whole.substr(0, n);
    v1::Transaction expected;
    const bool protobuf_parses = expected.ParseFromString(cut);
    v1::Transaction txn;
    LentRelations lent;
    ASSERT_EQ(catalog.Parse(cut, &txn, &lent), protobuf_parses) << "cut at " << n;
    rejected += !protobuf_parses;
    if (protobuf_parses) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(txn, expected)) << n;
    }
    lent.Return(&txn);
  }
  EXPECT_GT(rejected, static_cast<int>(whole.size()) / 2);

  // A description that is not a Relation: its name's length runs past the description's end.
  const std::string broken = whole + std::string("\x42\x02\x1a\x05", 4);
  v1::Transaction txn, expected;
  LentRelations lent;
  EXPECT_FALSE(expected.ParseFromString(broken));
  EXPECT_FALSE(catalog.Parse(broken, &txn, &lent));
  EXPECT_TRUE(lent.empty());

  // Random bytes, and random bytes after a valid prefix: the catalog agrees with protobuf.
  std::mt19937 rng(20261206);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes;
    if (round % 2 == 0) bytes = whole.substr(0, rng() % whole.size());
    const size_t extra = rng() % 64;
    for (size_t i = 0; i < extra; ++i) bytes.push_back(static_cast<char>(rng() & 0xff));
    v1::Transaction reference, parsed;
    LentRelations lent_now;
    const bool protobuf_parses = reference.ParseFromString(bytes);
    ASSERT_EQ(catalog.Parse(bytes, &parsed, &lent_now), protobuf_parses) << "round " << round;
    if (protobuf_parses) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, reference)) << round;
    }
    lent_now.Return(&parsed);
  }
}

// Framings protobuf has rules for that random bytes almost never hit. Each case is a valid
// transaction with something appended or prepended; the catalog must agree with protobuf.
TEST(RelationCatalogTest, EdgeFramingsAreJudgedAsProtobufJudgesThem) {
  RelationCatalog catalog;
  const std::string base = Txn({Table(1, "accounts")}).SerializeAsString();
  v1::Transaction one;
  *one.add_relations() = Table(2, "history");
  const std::string entry = one.SerializeAsString();  // tag 0x42, length, Relation
  const std::string body = entry.substr(2);
  ASSERT_EQ(static_cast<uint8_t>(entry[1]), body.size());  // a one-byte length
  const std::string padded_length = std::string(1, static_cast<char>(body.size() | 0x80)) +
                                    std::string("\x80\x80\x80\x80\x00", 6).substr(0, 5);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"the same description twice", base + entry + entry},
      {"a 5-byte tag", absl::StrCat(std::string("\xc2\x80\x80\x80\x00", 5), entry.substr(1))},
      {"a 6-byte tag", absl::StrCat(std::string("\xc2\x80\x80\x80\x80\x00", 6), entry.substr(1))},
      {"a 5-byte length", absl::StrCat(std::string(1, '\x42'), padded_length.substr(0, 4),
                                       std::string(1, '\x00'), body)},
      {"a 6-byte length", absl::StrCat(std::string(1, '\x42'), padded_length, body)},
      {"relations as a varint", base + std::string("\x40\x05", 2)},
      {"relations as a group", base + std::string("\x43\x08\x01\x44", 4)},
      {"an unmatched end group", base + std::string("\x44", 1)},
      {"field number 0", base + std::string("\x02\x00", 2)},
      {"an empty description", base + std::string("\x42\x00", 2)},
      {"a length past the end", base + std::string("\x42\x7f\x0a", 3)},
  };
  for (const auto& [name, payload] : cases) {
    v1::Transaction expected, txn;
    LentRelations lent;
    const bool protobuf_parses = expected.ParseFromString(payload);
    EXPECT_EQ(catalog.Parse(payload, &txn, &lent), protobuf_parses) << name;
    if (protobuf_parses) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(txn, expected)) << name;
    }
    lent.Return(&txn);
  }
  // The one transaction carrying a description twice holds the one parse twice.
  v1::Transaction twice;
  LentRelations lent;
  ASSERT_TRUE(catalog.Parse(base + entry + entry, &twice, &lent));
  ASSERT_EQ(twice.relations_size(), 3);
  EXPECT_EQ(&twice.relations(1), &twice.relations(2));
  lent.Return(&twice);
}

// Lent descriptions stay valid after the transaction that first brought them is gone, across the
// holders that move them (InboundRecord into an ApplyGroup), and after the catalog forgets them.
TEST(RelationCatalogTest, LentDescriptionsOutliveTheirTransactionsAndTheCatalogsBound) {
  auto catalog = std::make_unique<RelationCatalog>();
  const std::string payload = Txn({Table(1, "accounts"), Table(2, "history")}).SerializeAsString();
  LogRecord raw{.seq = 5, .kind = RecordKind::kTransaction, .payload = payload};
  {
    absl::StatusOr<InboundRecord> first = InboundReader::Decode(raw, catalog.get());
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->lent.size(), 2u);
  }  // returned by the record's destructor
  absl::StatusOr<InboundRecord> record = InboundReader::Decode(raw, catalog.get());
  ASSERT_TRUE(record.ok()) << record.status();
  InboundRecord moved = *std::move(record);
  auto group = std::make_shared<ApplyGroup>();
  group->txns.emplace_back(moved.seq, std::move(moved.txn));
  group->lent.push_back(std::move(moved.lent));
  // Fill the catalog past its bound: it starts over, the group's descriptions live on.
  for (uint32_t id = 10; id < 10 + RelationCatalog::kMaxEntries + 5; ++id) {
    v1::Transaction t = Txn({Table(id, absl::StrCat("t", id))}, 1);
    v1::Transaction parsed;
    LentRelations lent;
    ASSERT_TRUE(catalog->Parse(t.SerializeAsString(), &parsed, &lent));
    lent.Return(&parsed);
  }
  EXPECT_LE(catalog->entries(), RelationCatalog::kMaxEntries);
  // And past its bytes: descriptions of 1 MiB each.
  for (uint32_t id = 1; id <= RelationCatalog::kMaxBytes / (1 << 20) + 2; ++id) {
    v1::Relation wide = Table(id, absl::StrCat("wide", id), 1);
    wide.mutable_columns(0)->set_name(std::string(1 << 20, 'w'));
    v1::Transaction parsed;
    LentRelations lent;
    ASSERT_TRUE(catalog->Parse(Txn({wide}, 1).SerializeAsString(), &parsed, &lent));
    EXPECT_EQ(parsed.relations(0).columns(0).name().size(), size_t{1} << 20);
    lent.Return(&parsed);
  }
  EXPECT_LE(catalog->entries(), RelationCatalog::kMaxBytes / (1 << 20));
  catalog.reset();
  const v1::Transaction& held = group->txns[0].second;
  ASSERT_EQ(held.relations_size(), 2);
  EXPECT_EQ(held.relations(0).name(), "accounts");
  EXPECT_EQ(held.relations(1).columns_size(), 3);
  v1::Transaction copy = held;  // a copy owns its own
  group.reset();                // returned by the group's destructor
  EXPECT_EQ(copy.relations(0).name(), "accounts");
}

TEST(RelationCatalogDeathTest, ATransactionThatLostItsLentDescriptionsAborts) {
  RelationCatalog catalog;
  const std::string payload = Txn({Table(1, "accounts")}).SerializeAsString();
  EXPECT_DEATH(
      {
        v1::Transaction txn;
        LentRelations lent;
        if (!catalog.Parse(payload, &txn, &lent)) return;
        v1::Transaction elsewhere = std::move(txn);  // moved without its LentRelations
        lent.Return(&txn);
      },
      "no longer holds its lent table descriptions");
}

}  // namespace
}  // namespace ferry
