// NodeCache: recycles the memory blocks of message nodes, so that admitting
// a message does not call malloc and finishing it does not call free.
//
// Why: a node is allocated by the thread that calls Send and freed by an
// executor thread, so with glibc's malloc every free goes to another
// thread's arena under its lock. In the router benchmark that was a fifth
// of all instructions and, once the admission wake-ups were batched, two
// thirds of the remaining futex system calls (arena lock contention).
//
// Design: blocks come in size classes (64-byte steps up to 1 KiB, 256-byte
// steps up to 4 KiB; larger nodes use operator new/delete). Each thread
// keeps a private free list per class; Allocate pops from it, Release
// pushes onto it. A thread that holds more than kLocalBlocks of a class
// hands half of them to the class's shared list in one CAS; a thread whose
// list is empty takes the whole shared list in one exchange. So a producer
// and the executors that free its messages meet once per tens of messages
// per class, not once per message.
//
// The shared list is a Treiber stack that is only ever emptied whole
// (exchange), so it has no ABA problem: a push links its chain's tail to
// the head it read and CASes the head from that value, which stays right
// whatever happened in between. Memory ordering: the pusher writes the
// links (and finished with the blocks) before its release CAS; the taker's
// acquire exchange makes both visible before it reads the links or reuses
// a block.
//
// Bounds: a class's shared list holds at most kSharedBytes (beyond that
// blocks go back to operator delete); a thread's list holds at most
// kLocalBlocks plus what it last took from the shared list. A thread's
// blocks go back to the shared lists (or operator delete) when it exits.
//
// Under AddressSanitizer the cache is off (every block is new/delete), so
// that a use after free is still reported.
//
// Thread-safety: Allocate/Release from any thread.

#ifndef EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_
#define EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace edgeroute::router::internal {

#if defined(__SANITIZE_ADDRESS__)
#define EDGEROUTE_NODE_CACHE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGEROUTE_NODE_CACHE_OFF 1
#endif
#endif

class NodeCache {
 public:
  // Largest block the cache keeps; larger ones are new/delete.
  static constexpr size_t kMaxBlock = 4096;
  // Per class: blocks a thread keeps before it hands half over, and bytes
  // the shared list keeps.
  static constexpr size_t kLocalBlocks = 64;
  static constexpr size_t kSharedBytes = size_t{2} << 20;

  // A block of at least `bytes` bytes, aligned for any type (16 bytes).
  static void* Allocate(size_t bytes) {
#ifndef EDGEROUTE_NODE_CACHE_OFF
    const int c = ClassOf(bytes);
    if (c >= 0) {
      Local& local = ThisThread().classes[c];
      if (local.head == nullptr) TakeShared(c, &local);
      if (local.head != nullptr) {
        Block* b = local.head;
        local.head = b->next;
        if (local.count != 0) --local.count;  // counts are a bound only
        return b;
      }
      return ::operator new(ClassBytes(c));
    }
#endif
    return ::operator new(bytes);
  }

  // Gives back a block from Allocate(bytes), same `bytes`.
  static void Release(void* p, size_t bytes) {
#ifndef EDGEROUTE_NODE_CACHE_OFF
    const int c = ClassOf(bytes);
    if (c >= 0) {
      Local& local = ThisThread().classes[c];
      Block* b = static_cast<Block*>(p);
      b->next = local.head;
      local.head = b;
      if (++local.count > kLocalBlocks) HandOver(c, &local, kLocalBlocks / 2);
      return;
    }
#endif
    ::operator delete(p);
  }

  // The size class of a block of `bytes` bytes, -1 beyond kMaxBlock.
  static int ClassOf(size_t bytes) {
    if (bytes <= 1024)
      return bytes == 0 ? 0 : static_cast<int>((bytes - 1) / 64);
    if (bytes <= kMaxBlock) return 16 + static_cast<int>((bytes - 1025) / 256);
    return -1;
  }
  static size_t ClassBytes(int c) {
    return c < 16 ? size_t(c + 1) * 64 : 1024 + size_t(c - 15) * 256;
  }
  static constexpr int kClasses = 28;

 private:
  struct Block {
    Block* next;
  };
  struct Local {
    Block* head = nullptr;
    size_t count = 0;
  };
  // A thread's lists; on thread exit they go back to the shared lists.
  struct Locals {
    Local classes[kClasses];
    ~Locals() {
      for (int c = 0; c < kClasses; ++c) HandOver(c, &classes[c], SIZE_MAX);
    }
  };
  struct alignas(64) Shared {
    std::atomic<Block*> head{nullptr};
    // Blocks on the list, approximately (updated after the list itself):
    // only a bound.
    std::atomic<size_t> count{0};
  };

  static Locals& ThisThread() {
    static thread_local Locals locals;
    return locals;
  }
  static Shared* SharedLists() {
    // Never destroyed: threads exiting during static destruction still
    // hand their blocks over.
    static Shared* lists = new Shared[kClasses];
    return lists;
  }

  static void TakeShared(int c, Local* local) {
    Shared& s = SharedLists()[c];
    // Relaxed peek first: an empty list costs no read-modify-write.
    if (s.head.load(std::memory_order_relaxed) == nullptr) return;
    // Acquire: pairs with the release CAS in HandOver (links and the
    // blocks' last use are visible).
    Block* list = s.head.exchange(nullptr, std::memory_order_acquire);
    if (list == nullptr) return;
    // Only called with an empty local list. The count may be off by a
    // chain handed over meanwhile: it only decides when to hand over.
    local->head = list;
    local->count = s.count.exchange(0, std::memory_order_relaxed);
  }

  // Moves `n` blocks from the front of *local to the shared list, or to
  // operator delete when the shared list is at its bound.
  static void HandOver(int c, Local* local, size_t n) {
    if (n == 0 || local->head == nullptr) return;
    Block* first = local->head;
    Block* last = first;
    size_t taken = 1;
    while (taken < n && last->next != nullptr) {
      last = last->next;
      ++taken;
    }
    local->head = last->next;
    local->count -= taken;
    last->next = nullptr;
    Shared& s = SharedLists()[c];
    if (s.count.load(std::memory_order_relaxed) * ClassBytes(c) >=
        kSharedBytes) {
      while (first != nullptr) {
        Block* next = first->next;
        ::operator delete(first);
        first = next;
      }
      return;
    }
    Block* head = s.head.load(std::memory_order_relaxed);
    do {
      last->next = head;
      // Release: see the header comment.
    } while (!s.head.compare_exchange_weak(
        head, first, std::memory_order_release, std::memory_order_relaxed));
    s.count.fetch_add(taken, std::memory_order_relaxed);
  }
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_
