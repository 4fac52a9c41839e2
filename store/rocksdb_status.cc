#include "store/rocksdb_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace edgeroute::store {

absl::Status RocksDbToStatus(const rocksdb::Status& status,
                             absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", status.ToString());
  switch (status.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kIOError:
      if (status.IsNoSpace() ||
          status.subcode() == rocksdb::Status::kSpaceLimit) {
        return absl::ResourceExhaustedError(message);
      }
      if (status.IsPathNotFound()) return absl::NotFoundError(message);
      return absl::UnavailableError(message);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kIncomplete:
      return absl::UnavailableError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    case rocksdb::Status::kShutdownInProgress:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace edgeroute::store
