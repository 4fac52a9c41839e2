// absl::Status helpers for Debian's Abseil 20220623 (which has no status
// macros), and the one place where operating-system errors become
// absl::Status. (RocksDB errors become absl::Status in store/rocksdb_status.h,
// so that nothing below the store links a database.)
//
// Thread-safety: pure functions.

#ifndef EDGEROUTE_BASE_STATUS_H_
#define EDGEROUTE_BASE_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgeroute {

// Maps an errno value to a status code following Abseil's guide:
// ENOENT -> NotFound, EEXIST -> AlreadyExists, EACCES/EPERM ->
// PermissionDenied, ENOSPC/EDQUOT/ENOMEM -> ResourceExhausted, EAGAIN/EINTR
// -> Unavailable, EINVAL -> InvalidArgument, others -> Internal.
// The message is "<context>: <strerror>".
absl::Status ErrnoToStatus(int error_number, absl::string_view context);

}  // namespace edgeroute

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define EDGEROUTE_RETURN_IF_ERROR(expr)               \
  do {                                                \
    ::absl::Status edgeroute_status_ = (expr);        \
    if (!edgeroute_status_.ok()) return edgeroute_status_; \
  } while (0)

#define EDGEROUTE_STATUS_CONCAT_INNER_(a, b) a##b
#define EDGEROUTE_STATUS_CONCAT_(a, b) EDGEROUTE_STATUS_CONCAT_INNER_(a, b)

// `EDGEROUTE_ASSIGN_OR_RETURN(lhs, expr)`: evaluates `expr` (an
// absl::StatusOr<T>); on error returns its status, else moves the value into
// `lhs` (which may be a declaration: `auto x`).
#define EDGEROUTE_ASSIGN_OR_RETURN(lhs, expr)                              \
  EDGEROUTE_ASSIGN_OR_RETURN_IMPL_(                                        \
      EDGEROUTE_STATUS_CONCAT_(edgeroute_statusor_, __LINE__), lhs, expr)

#define EDGEROUTE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();    \
  lhs = std::move(statusor).value()

#endif  // EDGEROUTE_BASE_STATUS_H_
