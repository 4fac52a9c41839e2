#include "store/rocksdb_status.h"

#include "gtest/gtest.h"

namespace edgeroute::store {
namespace {

TEST(RocksDbToStatusTest, Mapping) {
  EXPECT_TRUE(RocksDbToStatus(rocksdb::Status::OK(), "x").ok());
  EXPECT_EQ(
      RocksDbToStatus(rocksdb::Status::Corruption("bad block"), "read").code(),
      absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      RocksDbToStatus(rocksdb::Status::NoSpace("disk full"), "write").code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RocksDbToStatus(rocksdb::Status::IOError("eio"), "write").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RocksDbToStatus(rocksdb::Status::NotFound("k"), "get").code(),
            absl::StatusCode::kNotFound);
  absl::Status s =
      RocksDbToStatus(rocksdb::Status::Corruption("bad block"), "open store");
  EXPECT_NE(s.message().find("open store: "), std::string::npos);
  EXPECT_NE(s.message().find("bad block"), std::string::npos);
}

}  // namespace
}  // namespace edgeroute::store
