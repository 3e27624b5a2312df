#include "connectors/postgres/source/relation_cache.h"

#include <xxhash.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ferry::pg {
namespace {

void AppendLe32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

v1::ReplicaIdentity ReplicaIdentityFromChar(char c) {
  switch (c) {
    case 'd':
      return v1::REPLICA_IDENTITY_DEFAULT;
    case 'n':
      return v1::REPLICA_IDENTITY_NOTHING;
    case 'f':
      return v1::REPLICA_IDENTITY_FULL;
    case 'i':
      return v1::REPLICA_IDENTITY_INDEX;
    default:
      return v1::REPLICA_IDENTITY_UNSPECIFIED;
  }
}

uint64_t SchemaHash(const v1::Relation& relation) {
  std::string buf;
  for (const v1::Column& c : relation.columns()) {
    absl::StrAppend(&buf, c.name());
    buf.push_back('\0');
    absl::StrAppend(&buf, c.type_name());
    buf.push_back('\0');
    AppendLe32(&buf, c.type_oid());
    AppendLe32(&buf, static_cast<uint32_t>(c.type_modifier()));
    buf.push_back(c.part_of_key() ? 1 : 0);
  }
  return XXH3_64bits(buf.data(), buf.size());
}

absl::StatusOr<v1::Relation> BuildRelation(const RelationMessage& message, RelationCatalog& catalog,
                                           uint32_t xid) {
  if (xid != 0) {
    if (absl::Status visible = catalog.AwaitVisible(xid); !visible.ok()) return visible;
  }
  std::vector<TypeRef> refs;
  refs.reserve(message.columns.size());
  for (const RelationColumn& c : message.columns) refs.push_back({c.type_oid, c.type_modifier});
  auto names = catalog.TypeNames(refs);
  if (!names.ok()) return names.status();
  if (names->size() != refs.size()) return absl::InternalError("type name lookup size mismatch");
  auto details = catalog.Table(message.relation_id);
  if (!details.ok()) return details.status();
  absl::flat_hash_set<std::string> not_null(details->not_null_columns.begin(),
                                            details->not_null_columns.end());

  v1::Relation r;
  r.set_relation_id(message.relation_id);
  // The protocol sends "" for pg_catalog.
  r.set_schema(message.schema.empty() ? "pg_catalog" : message.schema);
  r.set_name(message.name);
  r.set_replica_identity(ReplicaIdentityFromChar(message.replica_identity));
  for (size_t i = 0; i < message.columns.size(); ++i) {
    const RelationColumn& in = message.columns[i];
    v1::Column* c = r.add_columns();
    c->set_name(in.name);
    c->set_type_oid(in.type_oid);
    c->set_type_name((*names)[i]);
    c->set_type_modifier(in.type_modifier);
    c->set_part_of_key(in.part_of_key);
    c->set_not_null(not_null.contains(in.name));
  }
  for (const std::string& k : details->primary_key) r.add_primary_key(k);
  r.set_schema_hash(SchemaHash(r));
  return r;
}

absl::StatusOr<bool> RelationCache::Update(const RelationMessage& message, uint32_t xid) {
  auto relation = BuildRelation(message, *catalog_, xid);
  if (!relation.ok()) {
    return absl::Status(
        relation.status().code(),
        absl::StrCat("describing relation ", message.schema, ".", message.name, " (oid ",
                     message.relation_id, "): ", relation.status().message()));
  }
  auto it = relations_.find(message.relation_id);
  bool changed =
      it != relations_.end() && it->second->relation().schema_hash() != relation->schema_hash();
  // A new one, never changed in place: fragments holding the old one keep their shape.
  relations_[message.relation_id] = std::make_shared<const SharedRelation>(*std::move(relation));
  return changed;
}

SharedRelationPtr RelationCache::Find(uint32_t relation_id) const {
  auto it = relations_.find(relation_id);
  return it == relations_.end() ? nullptr : it->second;
}

}  // namespace ferry::pg
