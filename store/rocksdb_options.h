// Internal: the RocksDB options the store opens its database with. Shared
// with bench/store_bench.cc so that the raw-RocksDB baseline runs on the
// same configuration. Not part of the public API.

#ifndef EDGEROUTE_STORE_ROCKSDB_OPTIONS_H_
#define EDGEROUTE_STORE_ROCKSDB_OPTIONS_H_

#include "rocksdb/options.h"
#include "store/options.h"

namespace edgeroute::store {

// Flash-friendly defaults: bounded info LOG and write-ahead log, LZ4 when the
// library has it, statistics for write-amplification reporting.
rocksdb::Options MakeRocksDbOptions(const StoreOptions& options);

}  // namespace edgeroute::store

#endif  // EDGEROUTE_STORE_ROCKSDB_OPTIONS_H_
