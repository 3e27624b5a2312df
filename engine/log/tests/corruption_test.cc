// Damage on disk: whatever is wrong with the stored bytes, the log reports kDataLoss (or refuses
// to open) and never returns the damaged bytes as a record. Two lines of defence are covered:
// RocksDB's own block and WAL checksums (bytes flipped in the files), and the record envelope's
// checksum (a well-formed RocksDB value that is not what the log wrote under that key).
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/log/durable_log.h"
#include "engine/log/log_format.h"
#include "engine/log/tests/log_test_support.h"

namespace ferry {
namespace {

using log_testing::ReadAll;
using log_testing::ScratchDir;

constexpr int kRecords = 200;

std::string PayloadOf(uint64_t seq) {
  return absl::StrFormat("payload-%06d-", seq) + std::string(80, 'v');
}

// The log's RocksDB database opened directly, as a tool (or a bug) could.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::ColumnFamilyOptions cf;
    cf.compression = rocksdb::kNoCompression;  // as the log: payload bytes stay findable
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, cf},
        {log_format::kRecordsFamily, cf},
        {log_format::kMetaFamily, cf}};
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~RawDb() {
    if (db_ == nullptr) return;
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }
  rocksdb::ColumnFamilyHandle* records() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[2]; }

  std::string Get(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    std::string value;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
    return value;
  }
  void Put(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const std::string& value) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    EXPECT_TRUE(db_->Put(wo, cf, key, value).ok());
  }
  void Delete(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    EXPECT_TRUE(db_->Delete(wo, cf, key).ok());
  }
  // Moves everything into SST files, so the WAL holds nothing the test damages later.
  void FlushAll() {
    for (auto* h : handles_) EXPECT_TRUE(db_->Flush(rocksdb::FlushOptions(), h).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

class CorruptionTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/log"; }

  void SetUp() override {
    auto log = DurableLog::Open({.path = path()});
    ASSERT_TRUE(log.ok()) << log.status();
    for (uint64_t seq = 1; seq <= kRecords; seq += 10) {
      AppendRequest req;
      for (uint64_t s = seq; s < seq + 10; ++s) {
        req.records.push_back({RecordKind::kTransaction, PayloadOf(s)});
      }
      req.cursors.push_back({"applied", seq + 9});
      ASSERT_TRUE((*log)->Append(std::move(req)).ok());
    }
  }

  // Reads the log record by record. Every record returned must be exactly what was written;
  // returns how many reads failed with kDataLoss (any other error fails the test).
  int ReadEachRecord(const DurableLog& log) {
    int data_loss = 0;
    for (uint64_t seq = 1; seq <= kRecords; ++seq) {
      auto one = log.Read(seq, 1, 1 << 20);
      if (!one.ok()) {
        EXPECT_EQ(one.status().code(), absl::StatusCode::kDataLoss) << one.status();
        ++data_loss;
        continue;
      }
      EXPECT_EQ(one->size(), 1u);
      if (!one->empty()) {
        EXPECT_EQ((*one)[0].seq, seq);
        EXPECT_EQ((*one)[0].payload, PayloadOf(seq)) << "garbage returned for " << seq;
      }
    }
    return data_loss;
  }

  // Files of the database whose name ends with `suffix`.
  std::vector<std::string> FilesEndingWith(const std::string& suffix) const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path())) {
      const std::string name = e.path().string();
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        out.push_back(name);
      }
    }
    return out;
  }

  // Flips one bit of the first occurrence of `needle` in any of `files`; false when absent.
  static bool FlipBitIn(const std::vector<std::string>& files, const std::string& needle,
                        size_t offset_in_needle) {
    for (const auto& file : files) {
      std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const size_t at = bytes.find(needle);
      if (at == std::string::npos) continue;
      f.seekp(static_cast<std::streamoff>(at + offset_in_needle));
      const char flipped = static_cast<char>(bytes[at + offset_in_needle] ^ 0x10);
      f.write(&flipped, 1);
      return f.good();
    }
    return false;
  }

  ScratchDir dir_;
};

// --- RocksDB's checksums ---------------------------------------------------------------------

TEST_F(CorruptionTest, FlippedByteInAnSstDataBlockIsDataLoss) {
  { RawDb(path()).FlushAll(); }
  ASSERT_FALSE(FilesEndingWith(".sst").empty());
  ASSERT_TRUE(FlipBitIn(FilesEndingWith(".sst"), PayloadOf(100), 20)) << "payload not in an SST";

  auto log = DurableLog::Open({.path = path()});
  if (!log.ok()) {  // refusing to open is a fine answer too, as long as it says why
    EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
    return;
  }
  EXPECT_GT(ReadEachRecord(**log), 0) << "a flipped byte went unnoticed";
  auto all = ReadAll(**log);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss) << all.status();
}

// KNOWN GAP, disabled until durable_log.cc changes: RocksDB's default WAL recovery
// (kPointInTimeRecovery) stops replaying at the damaged WAL record and opens "successfully"
// without every acknowledged record after it (here 91..200), so next_seq silently goes back.
// WALRecoveryMode::kTolerateCorruptedTailRecords reports Corruption instead (checked with
// RocksDB 7.8.3) while still accepting a torn tail; see the report of the "Foundation" issue.
TEST_F(CorruptionTest, FlippedByteInTheWalIsDataLossNotASilentlyShorterLog) {
  ASSERT_FALSE(FilesEndingWith(".log").empty());
  // Record 100's bytes sit in the WAL (the log was never flushed): damage them.
  ASSERT_TRUE(FlipBitIn(FilesEndingWith(".log"), PayloadOf(100), 20)) << "payload not in WAL";

  auto log = DurableLog::Open({.path = path()});
  if (!log.ok()) {
    EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
    return;
  }
  // If the log opens, every acknowledged record must still be readable or reported lost:
  // records 101..200 were acknowledged, a log that silently ends at 99 has lost them.
  ASSERT_EQ((*log)->next_seq(), static_cast<uint64_t>(kRecords + 1))
      << "acknowledged records vanished without an error";
  EXPECT_GT(ReadEachRecord(**log), 0);
}

// --- The envelope's checksum -----------------------------------------------------------------

TEST_F(CorruptionTest, WrongValueUnderARecordKeyIsDataLoss) {
  {
    RawDb db(path());
    std::string value = db.Get(db.records(), log_format::EncodeKey(50));
    value[log_format::kHeaderSize + 3] ^= 0x01;  // a well-formed RocksDB value, bad envelope
    db.Put(db.records(), log_format::EncodeKey(50), value);
  }
  auto log = DurableLog::Open({.path = path()});
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(ReadEachRecord(**log), 1);
  auto from_start = (*log)->Read(1, 1000, 1 << 30);
  EXPECT_EQ(from_start.status().code(), absl::StatusCode::kDataLoss) << from_start.status();
  auto before = (*log)->Read(1, 49, 1 << 30);  // the records before it are fine
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->size(), 49u);
}

TEST_F(CorruptionTest, RecordCopiedUnderAnotherKeyIsDataLoss) {
  {
    RawDb db(path());
    db.Put(db.records(), log_format::EncodeKey(60), db.Get(db.records(), log_format::EncodeKey(7)));
  }
  auto log = DurableLog::Open({.path = path()});
  ASSERT_TRUE(log.ok()) << log.status();
  auto at = (*log)->Read(60, 1, 1 << 20);
  EXPECT_EQ(at.status().code(), absl::StatusCode::kDataLoss) << at.status();
  EXPECT_EQ(ReadEachRecord(**log), 1);
}

TEST_F(CorruptionTest, DamagedLastRecordStopsOpen) {
  {
    RawDb db(path());
    std::string value = db.Get(db.records(), log_format::EncodeKey(kRecords));
    value.resize(value.size() - 1);  // torn
    db.Put(db.records(), log_format::EncodeKey(kRecords), value);
  }
  auto log = DurableLog::Open({.path = path()});
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
}

TEST_F(CorruptionTest, MissingRecordIsDataLossNotASkip) {
  {
    RawDb db(path());
    db.Delete(db.records(), log_format::EncodeKey(120));
  }
  auto log = DurableLog::Open({.path = path()});
  ASSERT_TRUE(log.ok()) << log.status();
  auto across = (*log)->Read(115, 10, 1 << 20);
  EXPECT_EQ(across.status().code(), absl::StatusCode::kDataLoss) << across.status();
  auto at = (*log)->Read(120, 1, 1 << 20);
  EXPECT_EQ(at.status().code(), absl::StatusCode::kDataLoss) << at.status();
}

TEST_F(CorruptionTest, DamagedCursorIsDataLoss) {
  {
    RawDb db(path());
    db.Put(db.meta(), absl::StrCat(log_format::kCursorPrefix, "applied"), "1234");
  }
  auto log = DurableLog::Open({.path = path()});
  ASSERT_TRUE(log.ok()) << log.status();
  auto cursor = (*log)->GetCursor("applied");
  EXPECT_EQ(cursor.status().code(), absl::StatusCode::kDataLoss) << cursor.status();
}

TEST_F(CorruptionTest, NewerFormatVersionIsFailedPrecondition) {
  {
    RawDb db(path());
    db.Put(db.meta(), log_format::kFormatKey,
           log_format::EncodeU64(log_format::kFormatVersion + 1));
  }
  auto log = DurableLog::Open({.path = path()});
  EXPECT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition) << log.status();
}

}  // namespace
}  // namespace ferry
