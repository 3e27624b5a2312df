#include "connectors/postgres/testing/transaction_builders.h"

#include "absl/hash/hash.h"
#include "google/protobuf/util/json_util.h"
#include "proto/pg_messages.pb.h"

namespace ferry::sink_test {

v1::Relation Relation(uint32_t id, const std::string& schema, const std::string& name,
                      const std::vector<Col>& cols, v1::ReplicaIdentity identity) {
  v1::Relation r;
  r.set_relation_id(id);
  r.set_schema(schema);
  r.set_name(name);
  r.set_replica_identity(identity);
  std::string shape;
  for (const Col& c : cols) {
    auto* col = r.add_columns();
    col->set_name(c.name);
    col->set_type_name(c.type);
    col->set_part_of_key(c.key || identity == v1::REPLICA_IDENTITY_FULL);
    col->set_not_null(c.not_null || c.key);
    if (c.key) r.add_primary_key(c.name);
    shape += c.name + ":" + c.type + ";";
  }
  r.set_schema_hash(absl::Hash<std::string>{}(shape));
  return r;
}

v1::Tuple Tuple(const Values& values) {
  v1::Tuple t;
  for (const auto& v : values) {
    auto* value = t.add_values();
    if (!v) {
      value->set_null(true);
    } else if (*v == kToast) {
      value->set_unchanged_toast(true);
    } else {
      value->set_text(*v);
    }
  }
  return t;
}

v1::Change Insert(uint32_t rel, const Values& row) {
  v1::Change c;
  c.set_op(v1::INSERT);
  c.set_relation_id(rel);
  *c.mutable_new_tuple() = Tuple(row);
  return c;
}

v1::Change Update(uint32_t rel, const Values& row, std::optional<Values> old, bool old_key_only) {
  v1::Change c;
  c.set_op(v1::UPDATE);
  c.set_relation_id(rel);
  *c.mutable_new_tuple() = Tuple(row);
  if (old) {
    *c.mutable_old_tuple() = Tuple(*old);
    c.set_old_is_key_only(old_key_only);
  }
  return c;
}

v1::Change Delete(uint32_t rel, const Values& old, bool old_key_only) {
  v1::Change c;
  c.set_op(v1::DELETE);
  c.set_relation_id(rel);
  *c.mutable_old_tuple() = Tuple(old);
  c.set_old_is_key_only(old_key_only);
  return c;
}

v1::Change Truncate(const std::vector<uint32_t>& rels) {
  v1::Change c;
  c.set_op(v1::TRUNCATE);
  c.set_relation_id(rels.at(0));
  for (uint32_t r : rels) c.add_truncate_relation_ids(r);
  return c;
}

v1::Change DdlMessage(const std::string& tag, const std::string& query,
                      const std::vector<std::pair<std::string, std::string>>& tables,
                      bool authenticated) {
  v1::PgDdlMessage m;
  m.set_v(1);
  m.set_tag(tag);
  m.set_ordinal(1);
  m.set_query(query);
  m.set_search_path("public");
  for (const auto& [schema, name] : tables) {
    v1::PgTableRef* t = m.add_tables();
    t->set_schema(schema);
    t->set_name(name);
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(m, &json);
  v1::Change c;
  c.set_op(v1::MESSAGE);
  c.set_message_prefix("ferry.ddl");
  c.set_message_content(json);
  c.set_message_authenticated(authenticated);
  return c;
}

v1::Transaction Txn(const std::vector<v1::Relation>& relations,
                    const std::vector<v1::Change>& changes, int64_t commit_time_us) {
  v1::Transaction t;
  t.set_origin_region("east");
  t.set_commit_time_us(commit_time_us == 0 ? 1700000000000000 : commit_time_us);
  t.set_fragment(0);
  t.set_last_fragment(true);
  for (const auto& r : relations) *t.add_relations() = r;
  for (const auto& c : changes) *t.add_changes() = c;
  return t;
}

absl::StatusOr<uint64_t> AppendTxns(DurableLog& log, const std::vector<v1::Transaction>& txns,
                                    RecordKind kind) {
  AppendRequest req;
  for (const auto& t : txns) req.records.push_back({kind, t.SerializeAsString()});
  auto first = log.Append(std::move(req));
  if (!first.ok()) return first.status();
  return *first + txns.size() - 1;
}

absl::StatusOr<uint64_t> AppendHeartbeat(DurableLog& log, uint64_t position) {
  v1::Heartbeat hb;
  hb.set_source_position(position);
  AppendRequest req;
  req.records.push_back({RecordKind::kHeartbeat, hb.SerializeAsString()});
  return log.Append(std::move(req));
}

}  // namespace ferry::sink_test
