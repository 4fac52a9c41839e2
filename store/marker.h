// Internal: the store directory's marker file (FORMAT.md, "Directory"), and
// the check Store::Open and RepairStore make before RocksDB touches a
// directory: an edgeroute store, an empty directory, or refused.

#ifndef EDGEROUTE_STORE_MARKER_H_
#define EDGEROUTE_STORE_MARKER_H_

#include <string>

#include "absl/status/status.h"

namespace edgeroute::store::internal {

inline constexpr char kMarkerFileName[] = "EDGEROUTE-STORE";
// The marker's whole content.
inline constexpr char kMarkerText[] = "edgeroute-store 1\n";

// Makes `directory` a store directory or says why it cannot be one:
//  * missing or empty: created with the marker (written, fsynced, renamed
//    into place, directory fsynced) -- OK;
//  * with the marker: OK;
//  * without the marker but holding a store made by an earlier edgeroute
//    (RocksDB's CURRENT, the four column families and the "format" record
//    of FORMAT.md): the marker is added -- OK;
//  * anything else: FailedPrecondition naming the directory (nothing in it
//    is changed). Unreadable: PermissionDenied / Unavailable with errno's
//    text.
absl::Status ClaimStoreDirectory(const std::string& directory);

// Like ClaimStoreDirectory but never creates or writes anything: OK if the
// marker is there or the directory holds an earlier edgeroute store.
absl::Status CheckStoreDirectory(const std::string& directory);

}  // namespace edgeroute::store::internal

#endif  // EDGEROUTE_STORE_MARKER_H_
