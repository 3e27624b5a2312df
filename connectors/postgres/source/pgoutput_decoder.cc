#include "connectors/postgres/source/pgoutput_decoder.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "connectors/postgres/common/lsn.h"

namespace ferry::pg {
namespace {

// Big-endian reader over one message; every read checks the remaining length and records
// the first failure with its offset.
class Reader {
 public:
  // Offsets count from the message's first byte (its type), which is already consumed.
  Reader(absl::string_view bytes, char type) : bytes_(bytes), type_(type) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Error(absl::string_view what) const { return ErrorAt(pos_, what); }
  // For a value already consumed: points at its first byte.
  absl::Status ErrorAt(size_t offset, absl::string_view what) const {
    return absl::DataLossError(
        absl::StrFormat("malformed pgoutput %s message ('%c'): %s at offset %d of %d bytes",
                        PgOutputMessageName(type_), type_ >= 32 && type_ < 127 ? type_ : '?', what,
                        offset, bytes_.size()));
  }

  absl::Status Need(size_t n, absl::string_view what) const {
    if (remaining() >= n) return absl::OkStatus();
    return Error(absl::StrCat("truncated: ", what, " needs ", n, " bytes, ", remaining(), " left"));
  }

  absl::StatusOr<uint8_t> U8(absl::string_view what) {
    if (auto s = Need(1, what); !s.ok()) return s;
    return static_cast<uint8_t>(bytes_[pos_++]);
  }
  absl::StatusOr<uint16_t> U16(absl::string_view what) {
    if (auto s = Need(2, what); !s.ok()) return s;
    uint16_t v = static_cast<uint16_t>((Byte(0) << 8) | Byte(1));
    pos_ += 2;
    return v;
  }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    if (auto s = Need(4, what); !s.ok()) return s;
    uint32_t v = (Byte(0) << 24) | (Byte(1) << 16) | (Byte(2) << 8) | Byte(3);
    pos_ += 4;
    return v;
  }
  absl::StatusOr<uint64_t> U64(absl::string_view what) {
    if (auto s = Need(8, what); !s.ok()) return s;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte(i);
    pos_ += 8;
    return v;
  }
  // A NUL-terminated string.
  absl::StatusOr<std::string> CString(absl::string_view what) {
    const void* nul = std::memchr(bytes_.data() + pos_, '\0', remaining());
    if (nul == nullptr) {
      return Error(absl::StrCat("truncated: ", what, " has no terminating NUL"));
    }
    size_t len = static_cast<const char*>(nul) - (bytes_.data() + pos_);
    std::string s(bytes_.substr(pos_, len));
    pos_ += len + 1;
    return s;
  }
  absl::StatusOr<absl::string_view> Bytes(size_t n, absl::string_view what) {
    if (auto s = Need(n, what); !s.ok()) return s;
    absl::string_view v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  absl::Status ExpectEnd() const {
    if (remaining() == 0) return absl::OkStatus();
    return Error(absl::StrCat(remaining(), " trailing bytes"));
  }

 private:
  uint32_t Byte(size_t i) const { return static_cast<uint8_t>(bytes_[pos_ + i]); }

  absl::string_view bytes_;
  char type_;
  size_t pos_ = 1;
};

#define ASSIGN_OR_RETURN_DL(lhs, expr)                                                  \
  auto FERRY_DL_CAT(tmp_, __LINE__) = (expr);                                           \
  if (!FERRY_DL_CAT(tmp_, __LINE__).ok()) return FERRY_DL_CAT(tmp_, __LINE__).status(); \
  lhs = *std::move(FERRY_DL_CAT(tmp_, __LINE__))
#define FERRY_DL_CAT_INNER(a, b) a##b
#define FERRY_DL_CAT(a, b) FERRY_DL_CAT_INNER(a, b)

int64_t ToUnixMicros(uint64_t pg_micros) {
  return static_cast<int64_t>(pg_micros) + kPostgresEpochUnixMicros;
}

absl::Status ReadTuple(Reader& r, const DecodeLimits& limits, v1::Tuple* tuple) {
  ASSIGN_OR_RETURN_DL(uint16_t ncols, r.U16("tuple column count"));
  if (ncols > limits.max_columns) {
    return r.Error(
        absl::StrCat("tuple column count ", ncols, " exceeds the limit of ", limits.max_columns));
  }
  tuple->mutable_values()->Reserve(ncols);
  for (int i = 0; i < ncols; ++i) {
    ASSIGN_OR_RETURN_DL(uint8_t kind, r.U8("tuple value kind"));
    v1::Value* value = tuple->add_values();
    switch (kind) {
      case 'n':
        value->set_null(true);
        break;
      case 'u':
        value->set_unchanged_toast(true);
        break;
      case 't':
      case 'b': {
        ASSIGN_OR_RETURN_DL(uint32_t len, r.U32("tuple value length"));
        if (len > 0x7fffffffu) {
          return r.Error(absl::StrCat("negative tuple value length ", static_cast<int32_t>(len)));
        }
        ASSIGN_OR_RETURN_DL(absl::string_view data, r.Bytes(len, "tuple value"));
        if (kind == 't') {
          value->set_text(std::string(data));
        } else {
          value->set_binary(std::string(data));
        }
        break;
      }
      default:
        return r.ErrorAt(r.offset() - 1, absl::StrFormat("unknown tuple value kind 0x%02x", kind));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PgOutputMessage> DecodeBegin(Reader& r) {
  BeginMessage m;
  ASSIGN_OR_RETURN_DL(m.final_lsn, r.U64("final LSN"));
  ASSIGN_OR_RETURN_DL(uint64_t ts, r.U64("commit timestamp"));
  m.commit_time_us = ToUnixMicros(ts);
  ASSIGN_OR_RETURN_DL(m.xid, r.U32("xid"));
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeCommit(Reader& r) {
  CommitMessage m;
  ASSIGN_OR_RETURN_DL(m.flags, r.U8("flags"));
  ASSIGN_OR_RETURN_DL(m.commit_lsn, r.U64("commit LSN"));
  ASSIGN_OR_RETURN_DL(m.end_lsn, r.U64("end LSN"));
  ASSIGN_OR_RETURN_DL(uint64_t ts, r.U64("commit timestamp"));
  m.commit_time_us = ToUnixMicros(ts);
  if (m.end_lsn < m.commit_lsn) return r.Error("end LSN before commit LSN");
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeOrigin(Reader& r) {
  OriginMessage m;
  ASSIGN_OR_RETURN_DL(m.origin_commit_lsn, r.U64("origin commit LSN"));
  ASSIGN_OR_RETURN_DL(m.name, r.CString("origin name"));
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeRelation(Reader& r, const DecodeLimits& limits) {
  RelationMessage m;
  ASSIGN_OR_RETURN_DL(m.relation_id, r.U32("relation id"));
  ASSIGN_OR_RETURN_DL(m.schema, r.CString("namespace"));
  ASSIGN_OR_RETURN_DL(m.name, r.CString("relation name"));
  ASSIGN_OR_RETURN_DL(uint8_t identity, r.U8("replica identity"));
  if (identity != 'd' && identity != 'n' && identity != 'f' && identity != 'i') {
    return r.ErrorAt(r.offset() - 1, absl::StrFormat("unknown replica identity 0x%02x", identity));
  }
  m.replica_identity = static_cast<char>(identity);
  ASSIGN_OR_RETURN_DL(uint16_t ncols, r.U16("column count"));
  if (ncols > limits.max_columns) {
    return r.Error(
        absl::StrCat("column count ", ncols, " exceeds the limit of ", limits.max_columns));
  }
  m.columns.reserve(ncols);
  for (int i = 0; i < ncols; ++i) {
    RelationColumn c;
    ASSIGN_OR_RETURN_DL(uint8_t flags, r.U8("column flags"));
    c.part_of_key = (flags & 1) != 0;
    ASSIGN_OR_RETURN_DL(c.name, r.CString("column name"));
    ASSIGN_OR_RETURN_DL(c.type_oid, r.U32("column type oid"));
    ASSIGN_OR_RETURN_DL(uint32_t typmod, r.U32("column type modifier"));
    c.type_modifier = static_cast<int32_t>(typmod);
    m.columns.push_back(std::move(c));
  }
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeType(Reader& r) {
  TypeMessage m;
  ASSIGN_OR_RETURN_DL(m.type_oid, r.U32("type oid"));
  ASSIGN_OR_RETURN_DL(m.schema, r.CString("namespace"));
  ASSIGN_OR_RETURN_DL(m.name, r.CString("type name"));
  return m;
}

absl::Status ExpectTupleMarker(Reader& r, uint8_t got, absl::string_view expected) {
  return r.ErrorAt(r.offset() - 1, absl::StrFormat("expected %s, got 0x%02x", expected, got));
}

absl::StatusOr<PgOutputMessage> DecodeInsert(Reader& r, const DecodeLimits& limits) {
  InsertMessage m;
  ASSIGN_OR_RETURN_DL(m.relation_id, r.U32("relation id"));
  ASSIGN_OR_RETURN_DL(uint8_t marker, r.U8("new tuple marker"));
  if (marker != 'N') return ExpectTupleMarker(r, marker, "new tuple marker 'N'");
  if (auto s = ReadTuple(r, limits, &m.new_tuple); !s.ok()) return s;
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeUpdate(Reader& r, const DecodeLimits& limits) {
  UpdateMessage m;
  ASSIGN_OR_RETURN_DL(m.relation_id, r.U32("relation id"));
  ASSIGN_OR_RETURN_DL(uint8_t marker, r.U8("tuple marker"));
  if (marker == 'K' || marker == 'O') {
    m.old_kind = static_cast<char>(marker);
    if (auto s = ReadTuple(r, limits, &m.old_tuple); !s.ok()) return s;
    ASSIGN_OR_RETURN_DL(marker, r.U8("new tuple marker"));
  }
  if (marker != 'N') return ExpectTupleMarker(r, marker, "tuple marker 'K', 'O' or 'N'");
  if (auto s = ReadTuple(r, limits, &m.new_tuple); !s.ok()) return s;
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeDelete(Reader& r, const DecodeLimits& limits) {
  DeleteMessage m;
  ASSIGN_OR_RETURN_DL(m.relation_id, r.U32("relation id"));
  ASSIGN_OR_RETURN_DL(uint8_t marker, r.U8("old tuple marker"));
  if (marker != 'K' && marker != 'O')
    return ExpectTupleMarker(r, marker, "old tuple marker 'K' or 'O'");
  m.old_kind = static_cast<char>(marker);
  if (auto s = ReadTuple(r, limits, &m.old_tuple); !s.ok()) return s;
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeTruncate(Reader& r, const DecodeLimits& limits) {
  TruncateMessage m;
  ASSIGN_OR_RETURN_DL(uint32_t n, r.U32("relation count"));
  if (n > static_cast<uint32_t>(limits.max_truncate_relations)) {
    return r.Error(absl::StrCat("relation count ", n, " exceeds the limit of ",
                                limits.max_truncate_relations));
  }
  if (n == 0) return r.Error("truncate of no relation");
  ASSIGN_OR_RETURN_DL(uint8_t options, r.U8("options"));
  m.cascade = (options & 1) != 0;
  m.restart_identity = (options & 2) != 0;
  // Check the whole list fits before reserving, so an absurd count cannot allocate.
  if (auto s = r.Need(size_t{4} * n, "relation ids"); !s.ok()) return s;
  m.relation_ids.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN_DL(uint32_t id, r.U32("relation id"));
    m.relation_ids.push_back(id);
  }
  return m;
}

absl::StatusOr<PgOutputMessage> DecodeMessage(Reader& r) {
  LogicalMessage m;
  ASSIGN_OR_RETURN_DL(uint8_t flags, r.U8("flags"));
  m.transactional = (flags & 1) != 0;
  ASSIGN_OR_RETURN_DL(m.lsn, r.U64("LSN"));
  ASSIGN_OR_RETURN_DL(m.prefix, r.CString("prefix"));
  ASSIGN_OR_RETURN_DL(uint32_t len, r.U32("content length"));
  if (len > 0x7fffffffu) {
    return r.Error(absl::StrCat("negative content length ", static_cast<int32_t>(len)));
  }
  ASSIGN_OR_RETURN_DL(absl::string_view content, r.Bytes(len, "content"));
  m.content = std::string(content);
  return m;
}

}  // namespace

absl::string_view PgOutputMessageName(char type) {
  switch (type) {
    case 'B':
      return "Begin";
    case 'C':
      return "Commit";
    case 'O':
      return "Origin";
    case 'R':
      return "Relation";
    case 'Y':
      return "Type";
    case 'I':
      return "Insert";
    case 'U':
      return "Update";
    case 'D':
      return "Delete";
    case 'T':
      return "Truncate";
    case 'M':
      return "Message";
    default:
      return "unknown";
  }
}

absl::StatusOr<PgOutputMessage> DecodePgOutput(absl::string_view bytes,
                                               const DecodeLimits& limits) {
  if (bytes.empty()) {
    return absl::DataLossError("malformed pgoutput message: empty at offset 0");
  }
  char type = bytes[0];
  if (bytes.size() > limits.max_message_bytes) {
    return absl::DataLossError(absl::StrFormat(
        "oversized pgoutput %s message: %d bytes exceed the limit of %d at offset 0",
        PgOutputMessageName(type), bytes.size(), limits.max_message_bytes));
  }
  Reader r(bytes, type);
  absl::StatusOr<PgOutputMessage> m;
  switch (type) {
    case 'B':
      m = DecodeBegin(r);
      break;
    case 'C':
      m = DecodeCommit(r);
      break;
    case 'O':
      m = DecodeOrigin(r);
      break;
    case 'R':
      m = DecodeRelation(r, limits);
      break;
    case 'Y':
      m = DecodeType(r);
      break;
    case 'I':
      m = DecodeInsert(r, limits);
      break;
    case 'U':
      m = DecodeUpdate(r, limits);
      break;
    case 'D':
      m = DecodeDelete(r, limits);
      break;
    case 'T':
      m = DecodeTruncate(r, limits);
      break;
    case 'M':
      m = DecodeMessage(r);
      break;
    default:
      return absl::DataLossError(absl::StrFormat(
          "malformed pgoutput message: unknown message type 0x%02x at offset 0 of %d bytes",
          static_cast<uint8_t>(type), bytes.size()));
  }
  if (!m.ok()) return m;
  if (auto s = r.ExpectEnd(); !s.ok()) return s;
  return m;
}

}  // namespace ferry::pg
