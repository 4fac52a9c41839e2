// Internal helpers shared by store.cc and inspect.cc.

#ifndef EDGEROUTE_STORE_STORE_INTERNAL_H_
#define EDGEROUTE_STORE_STORE_INTERNAL_H_

#include <cstdint>
#include <string>

namespace edgeroute::store::internal {

// Sum of the sizes of the regular files directly in `directory` (a RocksDB
// directory is flat) except the disk reserve; 0 if it cannot be listed.
uint64_t DirectoryBytes(const std::string& directory);

}  // namespace edgeroute::store::internal

#endif  // EDGEROUTE_STORE_STORE_INTERNAL_H_
