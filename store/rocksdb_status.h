// The one place where RocksDB errors become absl::Status. Internal to
// //store (the only module that links RocksDB).
//
// Thread-safety: pure function.

#ifndef EDGEROUTE_STORE_ROCKSDB_STATUS_H_
#define EDGEROUTE_STORE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace edgeroute::store {

// Maps a RocksDB status: Corruption -> DataLoss, IOError "No space" ->
// ResourceExhausted, other IOError -> Unavailable, NotFound -> NotFound,
// InvalidArgument/NotSupported -> InvalidArgument/Unimplemented, Busy/TryAgain/
// TimedOut -> Unavailable, Aborted -> Aborted, others -> Internal.
// The message is "<context>: <rocksdb message>".
absl::Status RocksDbToStatus(const rocksdb::Status& status,
                             absl::string_view context);

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_ROCKSDB_STATUS_H_
