// SharedRelation: one table description (v1::Relation) that many captured transaction fragments
// refer to instead of each holding a copy, with its encoding as one `relations` entry of a
// v1::Transaction made once. A TPC-B transaction's four descriptions are most of its bytes: a
// source that copied them into every fragment spent more on the copies, and on serializing
// them again for every fragment, than on the changes themselves.
//
// A SharedRelation never changes: a table whose shape changes gets a new one, and fragments
// holding the old one keep describing the shape their changes had. Being immutable, it may be
// read from any thread.
//
// Example:
//   SharedRelationPtr shared = std::make_shared<const SharedRelation>(std::move(relation));
//   fragment.relations.push_back(shared);   // a SharedRelationsFragment
//   payload += shared->encoded_field();     // as Transaction.relations would be written
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proto/change.pb.h"

namespace ferry {

class SharedRelation {
 public:
  explicit SharedRelation(v1::Relation relation) : relation_(std::move(relation)) {
    v1::Transaction one;  // protobuf's own bytes for a Transaction holding only this relation
    *one.add_relations() = relation_;
    encoded_field_ = one.SerializeAsString();
  }

  const v1::Relation& relation() const { return relation_; }
  // This description as one `relations` field of a serialized v1::Transaction: tag, length and
  // the Relation's bytes.
  const std::string& encoded_field() const { return encoded_field_; }

 private:
  const v1::Relation relation_;
  std::string encoded_field_;
};

using SharedRelationPtr = std::shared_ptr<const SharedRelation>;

// A transaction fragment whose table descriptions are shared: `relations` are the ones `txn`
// would hold after its own (usually none), in that order.
struct SharedRelationsFragment {
  v1::Transaction txn;
  std::vector<SharedRelationPtr> relations;

  // The description of `relation_id` among the fragment's, or nullptr.
  const v1::Relation* Find(uint32_t relation_id) const {
    for (const v1::Relation& r : txn.relations()) {
      if (r.relation_id() == relation_id) return &r;
    }
    for (const SharedRelationPtr& r : relations) {
      if (r->relation().relation_id() == relation_id) return &r->relation();
    }
    return nullptr;
  }

  // The fragment as a v1::Transaction with its shared relations copied in.
  v1::Transaction Materialize() && {
    v1::Transaction out = std::move(txn);
    out.mutable_relations()->Reserve(out.relations_size() + static_cast<int>(relations.size()));
    for (const SharedRelationPtr& r : relations) *out.add_relations() = r->relation();
    return out;
  }
};

}  // namespace ferry
