// Conversions between the verifier's types and proto/verify.proto, with the checks every value
// from the peer gets (it is untrusted).
#pragma once

#include "absl/status/statusor.h"
#include "consistency/peer.h"
#include "proto/verify.pb.h"

namespace ferry::consistency::wire {

void ToProto(const Values& values, v1::Key* out);
Values FromProto(const v1::Key& key);
void ToProto(const KeyRange& range, v1::KeyRangeMsg* out);
KeyRange FromProto(const v1::KeyRangeMsg& range);
void ToProto(const Digest& digest, v1::DigestMsg* out);
Digest FromProto(const v1::DigestMsg& digest);
void ToProto(const ScannedRow& row, v1::RowMsg* out);
ScannedRow FromProto(const v1::RowMsg& row);
void ToProto(const TableSpec& spec, v1::OpenTableRequest* out);
// kInvalidArgument for a spec no verifier would send (leaf_bits over 30, no name).
absl::StatusOr<TableSpec> FromProto(const v1::OpenTableRequest& request);

void ToProto(const RepairRow& row, v1::RepairRowMsg* out);
RepairRow FromProto(const v1::RepairRowMsg& row);

// A verify id: 1..64 of [A-Za-z0-9_-].
bool ValidVerifyId(const std::string& id);

}  // namespace ferry::consistency::wire
