#include "consistency/grpc/wire.h"

namespace ferry::consistency::wire {

void ToProto(const Values& values, v1::Key* out) {
  for (const auto& v : values) {
    v1::KeyValue* value = out->add_values();
    if (v.has_value()) {
      value->set_text(*v);
    } else {
      value->set_is_null(true);
    }
  }
}

Values FromProto(const v1::Key& key) {
  Values out;
  out.reserve(key.values_size());
  for (const v1::KeyValue& v : key.values()) {
    if (v.is_null()) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(v.text());
    }
  }
  return out;
}

void ToProto(const KeyRange& range, v1::KeyRangeMsg* out) {
  if (range.begin.has_value()) ToProto(*range.begin, out->mutable_begin());
  if (range.end.has_value()) ToProto(*range.end, out->mutable_end());
}

KeyRange FromProto(const v1::KeyRangeMsg& range) {
  KeyRange out;
  if (range.has_begin()) out.begin = FromProto(range.begin());
  if (range.has_end()) out.end = FromProto(range.end());
  return out;
}

void ToProto(const Digest& digest, v1::DigestMsg* out) {
  out->set_count(digest.count);
  out->set_sum_low(digest.sum.low);
  out->set_sum_high(digest.sum.high);
}

Digest FromProto(const v1::DigestMsg& digest) {
  return Digest{digest.count(), Hash128{digest.sum_low(), digest.sum_high()}};
}

void ToProto(const ScannedRow& row, v1::RowMsg* out) {
  out->set_key_low(row.key_hash.low);
  out->set_key_high(row.key_hash.high);
  out->set_row_low(row.row_hash.low);
  out->set_row_high(row.row_hash.high);
  ToProto(row.key, out->mutable_key());
}

ScannedRow FromProto(const v1::RowMsg& row) {
  return ScannedRow{Hash128{row.key_low(), row.key_high()}, Hash128{row.row_low(), row.row_high()},
                    FromProto(row.key())};
}

void ToProto(const TableSpec& spec, v1::OpenTableRequest* out) {
  out->mutable_table()->set_schema(spec.schema);
  out->mutable_table()->set_name(spec.name);
  for (const auto& c : spec.columns) out->add_columns(c);
  for (const auto& k : spec.key_columns) out->add_key_columns(k);
  out->set_key_collate_c(spec.key_collate_c);
  out->set_leaf_bits(static_cast<uint32_t>(spec.leaf_bits));
  out->set_max_rows_per_second(spec.max_rows_per_second);
}

absl::StatusOr<TableSpec> FromProto(const v1::OpenTableRequest& request) {
  if (request.leaf_bits() > 30) return absl::InvalidArgumentError("leaf_bits over 30");
  if (request.table().name().empty()) return absl::InvalidArgumentError("no table name");
  TableSpec spec;
  spec.schema = request.table().schema();
  spec.name = request.table().name();
  spec.columns.assign(request.columns().begin(), request.columns().end());
  spec.key_columns.assign(request.key_columns().begin(), request.key_columns().end());
  spec.key_collate_c = request.key_collate_c();
  spec.leaf_bits = static_cast<int>(request.leaf_bits());
  spec.max_rows_per_second = request.max_rows_per_second();
  return spec;
}

void ToProto(const RepairRow& row, v1::RepairRowMsg* out) {
  ToProto(row.target.key, out->mutable_key());
  if (row.target.standby_row_hash.has_value()) {
    out->set_present_at_cut(true);
    out->set_row_low(row.target.standby_row_hash->low);
    out->set_row_high(row.target.standby_row_hash->high);
  }
  out->set_remove(row.target.remove);
  out->set_primary_copies(row.target.primary_copies);
  out->set_standby_copies(row.target.standby_copies);
  if (row.values.has_value()) ToProto(*row.values, out->mutable_values());
}

RepairRow FromProto(const v1::RepairRowMsg& row) {
  RepairRow out;
  out.target.key = FromProto(row.key());
  if (row.present_at_cut()) out.target.standby_row_hash = Hash128{row.row_low(), row.row_high()};
  out.target.remove = row.remove();
  out.target.primary_copies = row.primary_copies();
  out.target.standby_copies = row.standby_copies();
  if (!row.remove()) out.values = FromProto(row.values());
  return out;
}

bool ValidVerifyId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace ferry::consistency::wire
