#include "engine/apply/relation_catalog.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "spdlog/spdlog.h"

namespace ferry {
namespace {

using google::protobuf::internal::WireFormatLite;

constexpr size_t kMaxVarint32Bytes = 5;

// Splits a serialized Transaction into the encodings of its `relations` entries and the bytes of
// every other field, in their order. False when its framing is not protobuf's.
bool Split(std::string_view payload, std::string* rest, std::vector<std::string_view>* relations) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(payload.data()),
                                            static_cast<int>(payload.size()));
  size_t run = 0;  // where the current run of other fields began
  while (static_cast<size_t>(in.CurrentPosition()) < payload.size()) {
    const size_t at = static_cast<size_t>(in.CurrentPosition());
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return false;
    if (WireFormatLite::GetTagFieldNumber(tag) == v1::Transaction::kRelationsFieldNumber &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      // Protobuf's parser takes a tag or a length of at most 5 bytes; CodedInputStream takes
      // longer ones (padded with 0x80s). Such an entry is left to protobuf, which rejects it.
      if (static_cast<size_t>(in.CurrentPosition()) - at > kMaxVarint32Bytes) return false;
      const size_t length_at = static_cast<size_t>(in.CurrentPosition());
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return false;
      const size_t body = static_cast<size_t>(in.CurrentPosition());
      if (body - length_at > kMaxVarint32Bytes) return false;
      if (length > payload.size() - body || !in.Skip(static_cast<int>(length))) return false;
      rest->append(payload.substr(run, at - run));
      relations->push_back(payload.substr(body, length));
      run = body + length;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  rest->append(payload.substr(run));
  return true;
}

// A broken lending is a bug that would free the catalog's messages (or keep freed ones): stop, on
// stderr too, since the log may not be flushed.
[[noreturn]] void Die(const char* why) {
  spdlog::critical("apply: {}", why);
  std::fprintf(stderr, "ferry apply: %s\n", why);
  std::abort();
}

}  // namespace

LentRelations::LentRelations(LentRelations&& other) noexcept
    : relations_(std::move(other.relations_)) {
  other.relations_.clear();
}

LentRelations::~LentRelations() {
  if (!relations_.empty()) {
    Die("lent table descriptions not returned by their transaction");
  }
}

void LentRelations::Return(v1::Transaction* txn) {
  if (relations_.empty()) return;
  const int n = static_cast<int>(relations_.size());
  bool where_left = txn->relations_size() >= n;
  for (int i = 0; where_left && i < n; ++i) {
    where_left = &txn->relations(i) == relations_[static_cast<size_t>(i)].get();
  }
  if (!where_left) {
    Die("a transaction no longer holds its lent table descriptions");
  }
  txn->mutable_relations()->UnsafeArenaExtractSubrange(0, n, nullptr);
  relations_.clear();
}

bool RelationCatalog::Parse(std::string_view payload, v1::Transaction* txn, LentRelations* lent) {
  if (!lent->empty()) Die("a LentRelations reused before its return");
  rest_.clear();
  encodings_.clear();
  if (!Split(payload, &rest_, &encodings_) || encodings_.empty()) {
    return txn->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  }
  std::vector<std::shared_ptr<const v1::Relation>> relations;
  relations.reserve(encodings_.size());
  for (std::string_view bytes : encodings_) {
    std::shared_ptr<const v1::Relation> relation = Find(bytes);
    if (relation == nullptr) return false;  // protobuf rejects the whole payload too
    relations.push_back(std::move(relation));
  }
  if (!txn->ParseFromString(rest_)) return false;
  // The rest holds no `relations`, so the lent ones come first, in the payload's order.
  txn->mutable_relations()->Reserve(static_cast<int>(relations.size()));
  for (const auto& relation : relations) {
    // Lent, not owned: LentRelations::Return takes it back out before the transaction dies.
    txn->mutable_relations()->UnsafeArenaAddAllocated(const_cast<v1::Relation*>(relation.get()));
  }
  lent->relations_ = std::move(relations);
  return true;
}

std::shared_ptr<const v1::Relation> RelationCatalog::Find(std::string_view bytes) {
  if (auto it = by_bytes_.find(absl::string_view(bytes.data(), bytes.size()));
      it != by_bytes_.end()) {
    return it->second;
  }
  auto relation = std::make_shared<v1::Relation>();
  // Inside a Transaction a Relation has one level of nesting less to spend than alone.
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  in.SetRecursionLimit(in.RecursionBudget() - 1);
  if (!relation->ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) return nullptr;
  if (by_bytes_.size() >= kMaxEntries || bytes_ + bytes.size() > kMaxBytes) {
    by_bytes_.clear();
    bytes_ = 0;
  }
  bytes_ += bytes.size();
  by_bytes_.emplace(std::string(bytes), relation);
  return relation;
}

}  // namespace ferry
