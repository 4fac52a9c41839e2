// Transitional: the Status helpers moved to base/status.h (and the RocksDB
// conversion to store/rocksdb_status.h). This forwarding header stays until
// gateway/ includes base/status.h; new code includes base/status.h.

#ifndef EDGEROUTE_MESSAGE_STATUS_H_
#define EDGEROUTE_MESSAGE_STATUS_H_

#include "base/status.h"

#endif  // EDGEROUTE_MESSAGE_STATUS_H_
