// Crash test: a child process (crash_child) appends to a store under load and
// is killed with SIGKILL at a random moment, again and again. After every
// kill the store must open cleanly, and every message the child acknowledged
// must be present, readable and valid; nothing present may be corrupt.
//
// Default: 20 kills (about 10-20 s). More: set EDGEROUTE_CRASH_KILLS, e.g.
//   bazel test //tests/crash:crash_test --test_env=EDGEROUTE_CRASH_KILLS=500
// EDGEROUTE_CRASH_SEED fixes the random kill moments (default: 1).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "message/message.h"
#include "store/store.h"

namespace edgeroute::store {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string ChildPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return "tests/crash/crash_child";
  return absl::StrCat(srcdir, "/",
                      workspace != nullptr ? workspace : "edgeroute",
                      "/tests/crash/crash_child");
}

// Reads 8-byte ids from `fd` until `want` were read (want < 0: until EOF).
void ReadAcks(int fd, int64_t want, std::vector<uint64_t>* acks) {
  uint64_t id;
  size_t have = 0;
  char* p = reinterpret_cast<char*>(&id);
  while (want < 0 || static_cast<int64_t>(acks->size()) < want) {
    ssize_t n = read(fd, p + have, sizeof(id) - have);
    if (n <= 0) return;
    have += n;
    if (have == sizeof(id)) {
      acks->push_back(id);
      have = 0;
    }
  }
}

// Every message of `queue` after its checkpoint, as ids; fails the test on
// invalid bytes or non-increasing offsets.
std::vector<uint64_t> ReadQueue(Store* store, uint32_t queue,
                                uint64_t* last_offset) {
  std::vector<uint64_t> ids;
  std::vector<StoredMessage> batch;
  uint64_t after = 0;
  bool first = true;
  *last_offset = 0;
  for (;;) {
    absl::Status s = first ? store->Read(queue, 500, &batch)
                           : store->ReadAfter(queue, after, 500, &batch);
    first = false;
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok() || batch.empty()) break;
    for (const StoredMessage& m : batch) {
      EXPECT_GT(m.offset, *last_offset);
      *last_offset = m.offset;
      absl::StatusOr<MessageView> view = MessageView::Verify(
          {reinterpret_cast<const uint8_t*>(m.bytes.data()), m.bytes.size()});
      EXPECT_TRUE(view.ok()) << "offset " << m.offset;
      if (!view.ok()) continue;
      uint64_t id = std::strtoull(
          std::string(view->FindProperty("id").value).c_str(), nullptr, 10);
      EXPECT_NE(view->body().find(absl::StrCat("{\"id\":", id, ",")),
                absl::string_view::npos);
      ids.push_back(id);
    }
    after = batch.back().offset;
  }
  return ids;
}

TEST(CrashTest, AcknowledgedMessagesSurviveSigkill) {
  const int kills = EnvInt("EDGEROUTE_CRASH_KILLS", 20);
  std::mt19937 random(EnvInt("EDGEROUTE_CRASH_SEED", 1));
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/crash_store");
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
  const std::string child = ChildPath();
  ASSERT_EQ(access(child.c_str(), X_OK), 0) << child;

  // Queue b is never checkpointed: it must hold every acknowledged id.
  // Queue a is checkpointed part way after each run: it must hold every
  // acknowledged id that was not delivered yet.
  std::set<uint64_t> acked_all;
  std::set<uint64_t> acked_pending_a;
  uint64_t next_id = 1;
  uint64_t last_tail_a = 0;
  int total_acks = 0;
  for (int k = 0; k < kills; ++k) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const std::string first_id = absl::StrCat(next_id);
    const std::string durability = k % 2 == 0 ? "process" : "power";
    const std::string ack_fd = absl::StrCat(fds[1]);
    const std::string threads = absl::StrCat(1 + k % 3);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      execl(child.c_str(), child.c_str(), dir.c_str(), first_id.c_str(),
            durability.c_str(), ack_fd.c_str(), threads.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    // The kill moment: after a random number of acknowledgements (0 = while
    // the child is still opening the store).
    const int64_t wait_for = random() % 5 == 0 ? 0 : random() % 2000;
    std::vector<uint64_t> acks;
    ReadAcks(fds[0], wait_for, &acks);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    // Acknowledgements written before the kill count too.
    ReadAcks(fds[0], -1, &acks);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "child exited on its own with status " << WEXITSTATUS(status);
    for (uint64_t id : acks) {
      acked_all.insert(id);
      acked_pending_a.insert(id);
    }
    total_acks += static_cast<int>(acks.size());
    next_id += 100'000'000;

    StoreOptions options;
    options.directory = dir;
    options.cleanup_interval_ms = 0;
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(options);
    ASSERT_TRUE(store.ok()) << "kill " << k << ": " << store.status();
    if (acked_all.empty() && (*store)->ListQueues().size() < 2) continue;
    std::vector<QueueId> queues = (*store)->ListQueues();
    ASSERT_EQ(queues.size(), 2u);
    uint64_t tail_a = 0, tail_b = 0;
    std::vector<uint64_t> in_a = ReadQueue(store->get(), 0, &tail_a);
    std::vector<uint64_t> in_b = ReadQueue(store->get(), 1, &tail_b);
    absl::flat_hash_set<uint64_t> set_a(in_a.begin(), in_a.end());
    absl::flat_hash_set<uint64_t> set_b(in_b.begin(), in_b.end());
    EXPECT_EQ(set_a.size(), in_a.size()) << "duplicate in queue a";
    EXPECT_EQ(set_b.size(), in_b.size()) << "duplicate in queue b";
    int missing = 0;
    for (uint64_t id : acked_all) missing += set_b.contains(id) ? 0 : 1;
    for (uint64_t id : acked_pending_a) missing += set_a.contains(id) ? 0 : 1;
    ASSERT_EQ(missing, 0) << "kill " << k << ": acknowledged ids lost";
    Store::Stats stats = (*store)->GetStats();
    EXPECT_GE(stats.queues[0].tail, last_tail_a);
    last_tail_a = stats.queues[0].tail;

    // Deliver (checkpoint) a random part of queue a.
    if (!in_a.empty()) {
      std::vector<StoredMessage> batch;
      ASSERT_TRUE((*store)->Read(0, 1 + random() % in_a.size(), &batch).ok());
      ASSERT_FALSE(batch.empty());
      ASSERT_TRUE((*store)->Checkpoint(0, batch.back().offset).ok());
      for (size_t i = 0; i < batch.size(); ++i) acked_pending_a.erase(in_a[i]);
    }
    if (k % 4 == 3) {
      ASSERT_TRUE((*store)->RunCleanup(k % 8 == 7).ok());
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
  EXPECT_GT(total_acks, 0);
  std::printf("%d kills, %d acknowledged messages checked\n", kills,
              total_acks);
}

}  // namespace
}  // namespace edgeroute::store
