// The process the crash test kills: appends to two queues of a store until it
// is killed, reporting every acknowledged message id on a file descriptor.
//
// Usage: crash_child DIR FIRST_ID DURABILITY(process|power) ACK_FD THREADS
// Each thread t appends batches of 1-8 messages with ids FIRST_ID + t*10^7 +
// n to queues ("a", 0) and ("b", default). After Append returns OK it writes
// the batch's ids to ACK_FD as 8-byte integers (one write per batch, at most
// PIPE_BUF bytes, so writes from threads never interleave).

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "message/message.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

void Fail(const std::string& what) {
  std::fprintf(stderr, "crash_child: %s\n", what.c_str());
  std::_Exit(2);
}

void Produce(Store* store, uint32_t a, uint32_t b, uint64_t first_id,
             int ack_fd, int thread) {
  std::mt19937_64 random(first_id + thread);
  MessageBuilder builders[8];
  std::vector<AppendItem> items;
  const QueueTarget targets[] = {{a, -1}, {b, -1}};
  uint64_t next = first_id + static_cast<uint64_t>(thread) * 10'000'000;
  for (;;) {
    const int n = 1 + static_cast<int>(random() % 8);
    items.clear();
    uint64_t ids[8];
    for (int k = 0; k < n; ++k) {
      ids[k] = next++;
      builders[k].Clear();
      std::string body = absl::StrCat("{\"id\":", ids[k], ",\"pad\":\"");
      body.append(random() % 600, 'x');
      body += "\"}";
      builders[k].SetBody(body);
      builders[k].AddProperty("id", absl::StrCat(ids[k]));
      items.push_back({builders[k].Finish(), targets});
    }
    absl::Status s = store->Append(items);
    if (!s.ok()) Fail(absl::StrCat("append: ", s.ToString()));
    const size_t bytes = n * sizeof(uint64_t);
    if (write(ack_fd, ids, bytes) != static_cast<ssize_t>(bytes)) {
      Fail("ack write");
    }
  }
}

int Main(int argc, char** argv) {
  if (argc != 6) Fail("usage: DIR FIRST_ID DURABILITY ACK_FD THREADS");
  StoreOptions options;
  options.directory = argv[1];
  const uint64_t first_id = std::strtoull(argv[2], nullptr, 10);
  options.durability = std::strcmp(argv[3], "power") == 0
                           ? Durability::kPower
                           : Durability::kProcess;
  const int ack_fd = std::atoi(argv[4]);
  const int threads = std::atoi(argv[5]);
  // Small memtables so that flushes and compactions (and kills during
  // them) happen within the test's short runs.
  options.write_buffer_bytes = 256 << 10;
  options.cleanup_interval_ms = 5;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
  if (!store.ok()) Fail(absl::StrCat("open: ", store.status().ToString()));
  absl::StatusOr<uint32_t> a = (*store)->OpenQueue({"a", 0});
  absl::StatusOr<uint32_t> b = (*store)->OpenQueue({"b", kDefaultPriority});
  if (!a.ok() || !b.ok()) Fail("open queue");
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back(Produce, store->get(), *a, *b, first_id, ack_fd, t);
  }
  for (std::thread& w : workers) w.join();
  return 0;
}

}  // namespace
}  // namespace edgeroute::store

int main(int argc, char** argv) { return edgeroute::store::Main(argc, argv); }
