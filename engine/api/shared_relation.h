// SharedRelation: one table description (v1::Relation) that many captured transaction fragments
// refer to instead of each holding a copy, with its encoding as one `relations` entry of a
// v1::Transaction made once. A TPC-B transaction's four descriptions are most of its bytes: a
// source that copied them into every fragment spent more on the copies, and on serializing
// them again for every fragment, than on the changes themselves.
//
// A SharedRelation never changes: a table whose shape changes gets a new one, and fragments
// holding the old one keep describing the shape their changes had.
//
// Example:
//   auto shared = std::make_shared<const SharedRelation>(std::move(relation));
//   fragment.relations.push_back(shared);   // a SharedRelationsFragment
//   payload += shared->encoded_field();     // as Transaction.relations would be written
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "proto/change.pb.h"

namespace ferry {

class SharedRelation {
 public:
  explicit SharedRelation(v1::Relation relation) : relation_(std::move(relation)) {
    using google::protobuf::internal::WireFormatLite;
    using google::protobuf::io::CodedOutputStream;
    const std::string body = relation_.SerializeAsString();
    constexpr uint32_t kTag = WireFormatLite::MakeTag(v1::Transaction::kRelationsFieldNumber,
                                                      WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
    encoded_field_.resize(CodedOutputStream::VarintSize32(kTag) +
                          CodedOutputStream::VarintSize64(body.size()) + body.size());
    auto* p = reinterpret_cast<uint8_t*>(encoded_field_.data());
    p = CodedOutputStream::WriteVarint32ToArray(kTag, p);
    p = CodedOutputStream::WriteVarint64ToArray(body.size(), p);
    body.copy(reinterpret_cast<char*>(p), body.size());
  }

  const v1::Relation& relation() const { return relation_; }
  // This description as one `relations` field of a serialized v1::Transaction: tag, length and
  // the Relation's bytes.
  const std::string& encoded_field() const { return encoded_field_; }

 private:
  const v1::Relation relation_;
  std::string encoded_field_;
};

// A transaction fragment whose table descriptions are shared: `txn` holds no relations, and
// `relations` are the ones it would hold, in the same order.
struct SharedRelationsFragment {
  v1::Transaction txn;
  std::vector<std::shared_ptr<const SharedRelation>> relations;

  // The fragment as a v1::Transaction with its relations copied in.
  v1::Transaction Materialize() && {
    v1::Transaction out = std::move(txn);
    out.mutable_relations()->Reserve(static_cast<int>(relations.size()));
    for (const auto& r : relations) *out.add_relations() = r->relation();
    return out;
  }
};

}  // namespace ferry
