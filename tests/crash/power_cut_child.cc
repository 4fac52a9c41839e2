// Runs store work on a fault-injecting file system until the power goes
// (store/fault_fs.h), for power_cut_test. At the cut the process leaves the
// files as a power loss would (FaultFileSystem::PowerCut) and exits at once,
// from inside the file-system call: nothing runs after the moment of the
// cut.
//
//   power_cut_child DIR power|process SEED OPS FIRST_ID
//
// Reports on stdout, 9-byte records: 'A' + id (an Append of the message
// returned OK), 'C' + id (a checkpoint past the message returned OK), 'M' +
// the moment of the cut (0 append, 1 read+checkpoint, 2 cleanup, 3 after
// the work). Exit 0; anything else is a failure.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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
#include "rocksdb/env.h"
#include "store/fault_fs.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

std::atomic<int> moment{3};

void Emit(char kind, uint64_t value) {
  char record[9];
  record[0] = kind;
  std::memcpy(record + 1, &value, 8);
  // One write of less than PIPE_BUF bytes: never interleaved or torn.
  if (write(STDOUT_FILENO, record, sizeof(record)) != sizeof(record)) _exit(3);
}

std::string MakeMessage(uint64_t id, size_t size) {
  MessageBuilder builder;
  std::string body = absl::StrCat("{\"id\":", id, "}");
  body.resize(std::max(body.size(), size), 'x');
  builder.SetBody(body);
  builder.AddProperty("id", absl::StrCat(id));
  absl::Span<const uint8_t> bytes = builder.Finish();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

int Main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr,
                 "usage: power_cut_child DIR power|process SEED OPS ID\n");
    return 2;
  }
  auto fs = std::make_shared<FaultFileSystem>();
  std::unique_ptr<rocksdb::Env> env = NewFaultEnv(fs);
  FaultFileSystem* raw_fs = fs.get();
  fs->SetPowerOffHandler([raw_fs] {
    Emit('M', static_cast<uint64_t>(moment.load()));
    // Calls already past the power check finish their system call; then
    // the disk is left as the power loss leaves it.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    raw_fs->PowerCut();
    _exit(0);
  });
  std::mt19937 random(
      static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10)));
  const uint64_t ops = std::strtoull(argv[4], nullptr, 10);
  uint64_t next_id = std::strtoull(argv[5], nullptr, 10);

  StoreOptions options;
  options.directory = argv[1];
  options.durability = std::strcmp(argv[2], "power") == 0
                           ? Durability::kPower
                           : Durability::kProcess;
  options.cleanup_interval_ms = 0;
  options.write_buffer_bytes = 64 << 10;   // Flushes often...
  options.compact_after_bytes = 32 << 10;  // ...and compacts often.
  options.max_wal_bytes = 256 << 10;
  options.reserve_bytes = 64 << 10;
  options.env = env.get();
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Store> store = std::move(*opened);
  absl::StatusOr<uint32_t> q = store->OpenQueue({"q", 0});
  if (!q.ok()) return 1;
  fs->ArmPowerCut(ops);
  for (int i = 0; i < 200; ++i) {
    moment = 0;
    const int n = 1 + random() % 4;
    std::vector<std::string> messages;
    for (int k = 0; k < n; ++k) {
      messages.push_back(MakeMessage(next_id + k, 100 + random() % 3000));
    }
    std::vector<QueueTarget> targets(1, QueueTarget{*q, -1});
    std::vector<AppendItem> batch;
    for (const std::string& m : messages) {
      batch.push_back(
          {{reinterpret_cast<const uint8_t*>(m.data()), m.size()}, targets});
    }
    if (store->Append(batch).ok()) {
      for (int k = 0; k < n; ++k) Emit('A', next_id + k);
    }
    next_id += n;
    if (i % 3 == 2) {
      moment = 1;
      std::vector<StoredMessage> read;
      if (store->Read(*q, 1 + random() % 40, &read).ok() && !read.empty() &&
          store->Checkpoint(*q, read.back().offset).ok()) {
        for (const StoredMessage& m : read) {
          absl::StatusOr<MessageView> view = MessageView::Verify(
              {reinterpret_cast<const uint8_t*>(m.bytes.data()),
               m.bytes.size()});
          if (!view.ok()) return 1;
          Emit('C', std::strtoull(
                        std::string(view->FindProperty("id").value).c_str(),
                        nullptr, 10));
        }
      }
    }
    if (i % 7 == 6) {
      moment = 2;
      store->RunCleanup(/*force_compaction=*/random() % 2 == 0).IgnoreError();
    }
  }
  moment = 3;
  store->Close().IgnoreError();
  store.reset();
  // The power goes after the work: what was never synced is lost all the
  // same.
  Emit('M', 3);
  fs->PowerCut();
  return 0;
}

}  // namespace
}  // namespace edgeroute::store

int main(int argc, char** argv) { return edgeroute::store::Main(argc, argv); }
