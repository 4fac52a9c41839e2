// NodeCache: recycles the memory blocks of message nodes, so that admitting
// a message does not call malloc and finishing it does not call free.
//
// Why: a node is allocated by the thread that calls Send and freed by an
// executor thread, so with glibc's malloc every free goes to another
// thread's arena under its lock, and a burst that outgrows the arena makes
// it grow (page faults) and shrink again. In the router benchmark malloc
// and free were a fifth of all instructions and, once the admission
// wake-ups were batched, two thirds of the remaining futex system calls
// (arena lock contention).
//
// Design: blocks come in size classes (64-byte steps up to 1 KiB, 256-byte
// steps up to 4 KiB; larger nodes use operator new/delete). Each thread
// keeps a private free list per class; Allocate pops from it, Release
// pushes onto it. Threads exchange blocks in chains of about 16 KiB
// (ChainBlocks) through a bounded lock-free ring per class (MpscRing with
// its multi-consumer pop, so neither side has an ABA problem or reads a
// block another thread may have freed): a thread that holds two chains'
// worth hands one over, a thread whose list is empty takes one. So a
// producer and the executors that free its messages meet once per chain
// (32 blocks of 512 bytes), not once per message. The ring's release and
// acquire on its slot sequence numbers publish a chain's links and the
// blocks' last use.
//
// Bounds, per class: the ring holds at most kRingChains chains (~64 MiB;
// beyond that blocks go back to operator delete); TrimIfIdle, which a
// dispatch worker calls before it sleeps, frees what the ring holds beyond
// kIdleKeepBytes once no thread took a chain for kIdleTrimMicros, so after a
// burst the memory goes back to the allocator when traffic stops; a
// thread's own list holds at most two chains, and goes to the ring (or
// operator delete) when the thread exits.
//
// Under AddressSanitizer the cache is off (every block is new/delete), so
// that a use after free is still reported.
//
// Thread-safety: every method from any thread.

#ifndef EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_
#define EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "router/internal/mpsc_ring.h"

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
  static constexpr int kClasses = 28;
  // Bytes per chain handed between threads; chains per class ring.
  static constexpr size_t kChainBytes = 16384;
  static constexpr size_t kRingChains = 4096;
  // What TrimIfIdle keeps per class, and after how long without a take.
  static constexpr size_t kIdleKeepBytes = size_t{2} << 20;
  static constexpr int64_t kIdleTrimMicros = 1'000'000;

  // A block of at least `bytes` bytes, aligned for any type (16 bytes).
  static void* Allocate(size_t bytes) {
#ifndef EDGEROUTE_NODE_CACHE_OFF
    const int c = ClassOf(bytes);
    if (c >= 0) {
      Local& local = ThisThread().classes[c];
      if (local.head == nullptr) TakeChain(c, &local);
      if (local.head != nullptr) {
        Block* b = local.head;
        local.head = b->next;
        --local.count;
        // The next block's line is most likely in the cache of the thread
        // that released it: fetch it now, so that the next Allocate does
        // not wait for it to read its link.
        if (local.head != nullptr) __builtin_prefetch(local.head, 1);
        return b;
      }
      return ::operator new(ClassBytes(c));
    }
#endif
    return ::operator new(bytes);
  }

  // Gives back a block from Allocate(bytes), same `bytes`.
  static void Release(void* p, [[maybe_unused]] size_t bytes) {
#ifndef EDGEROUTE_NODE_CACHE_OFF
    const int c = ClassOf(bytes);
    if (c >= 0) {
      Local& local = ThisThread().classes[c];
      Block* b = static_cast<Block*>(p);
      b->next = local.head;
      local.head = b;
      if (++local.count >= 2 * ChainBlocks(c)) HandOver(c, &local);
      return;
    }
#endif
    ::operator delete(p);
  }

  // Frees what the rings hold beyond kIdleKeepBytes per class if no thread
  // took a chain for kIdleTrimMicros. Cheap when there is nothing to do.
  static void TrimIfIdle() {
    if (MonoMicros() - LastTake().load(std::memory_order_relaxed) >=
        kIdleTrimMicros) {
      Trim(kIdleKeepBytes);
    }
  }

  // Frees what each class's ring holds beyond `keep_bytes`.
  static void Trim(size_t keep_bytes) {
    for (int c = 0; c < kClasses; ++c) {
      ChainRing* ring = Rings()[c].load(std::memory_order_acquire);
      if (ring == nullptr) continue;
      const size_t keep = keep_bytes / kChainBytes;
      Chain chain;
      while (ring->SizeGuess() > keep && ring->TryPopShared(&chain)) {
        FreeChain(chain.head);
      }
    }
  }

  // Blocks in class c's ring, about (for tests).
  static size_t SharedBlocks(int c) {
    ChainRing* ring = Rings()[c].load(std::memory_order_acquire);
    return ring == nullptr ? 0 : ring->SizeGuess() * ChainBlocks(c);
  }

  // The size class of a block of `bytes` bytes, -1 beyond kMaxBlock.
  static int ClassOf(size_t bytes) {
    if (bytes <= 1024) {
      return bytes == 0 ? 0 : static_cast<int>((bytes - 1) / 64);
    }
    if (bytes <= kMaxBlock) return 16 + static_cast<int>((bytes - 1025) / 256);
    return -1;
  }
  static size_t ClassBytes(int c) {
    return c < 16 ? size_t(c + 1) * 64 : 1024 + size_t(c - 15) * 256;
  }
  // Blocks per chain of class c (at least 4).
  static size_t ChainBlocks(int c) {
    const size_t n = kChainBytes / ClassBytes(c);
    return n < 4 ? 4 : n;
  }

 private:
  struct Block {
    Block* next;
  };
  // A chain in a ring: its first block and its length.
  struct Chain {
    Block* head;
    size_t count;
  };
  using ChainRing = MpscRing<Chain>;
  struct Local {
    Block* head = nullptr;
    size_t count = 0;  // blocks on the list
  };
  // A thread's lists; on thread exit they go to the rings.
  struct Locals {
    Local classes[kClasses];
    ~Locals() {
      for (int c = 0; c < kClasses; ++c) {
        while (classes[c].head != nullptr) HandOver(c, &classes[c]);
      }
    }
  };

  static Locals& ThisThread() {
    static thread_local Locals locals;
    return locals;
  }
  // Created on first use, never destroyed: threads exiting during static
  // destruction still hand their blocks over.
  static std::atomic<ChainRing*>* Rings() {
    static std::atomic<ChainRing*> rings[kClasses] = {};
    return rings;
  }
  static ChainRing* RingOf(int c) {
    std::atomic<ChainRing*>& slot = Rings()[c];
    // Acquire: pairs with the release CAS below (an initialised ring).
    ChainRing* ring = slot.load(std::memory_order_acquire);
    if (ring != nullptr) return ring;
    auto* fresh = new ChainRing(kRingChains);
    if (slot.compare_exchange_strong(ring, fresh, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      return fresh;
    }
    delete fresh;  // another thread created it first
    return ring;
  }
  // When a thread last took a chain (MonoMicros).
  static std::atomic<int64_t>& LastTake() {
    alignas(64) static std::atomic<int64_t> last{0};
    return last;
  }
  static int64_t MonoMicros() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
  }

  static void FreeChain(Block* chain) {
    while (chain != nullptr) {
      Block* next = chain->next;
      ::operator delete(chain);
      chain = next;
    }
  }

  // Takes one chain from the ring into the (empty) local list.
  static void TakeChain(int c, Local* local) {
    ChainRing* ring = Rings()[c].load(std::memory_order_acquire);
    Chain chain;
    // SizeGuess first: an empty ring costs no read-modify-write.
    if (ring == nullptr || ring->SizeGuess() == 0 ||
        !ring->TryPopShared(&chain)) {
      return;
    }
    local->head = chain.head;
    local->count = chain.count;
    __builtin_prefetch(chain.head, 1);
    LastTake().store(MonoMicros(), std::memory_order_relaxed);
  }

  // Moves a chain of up to ChainBlocks(c) blocks from the front of *local
  // to the ring, or to operator delete when the ring is full.
  static void HandOver(int c, Local* local) {
    Block* first = local->head;
    if (first == nullptr) return;
    Block* last = first;
    size_t n = 1;
    while (n < ChainBlocks(c) && last->next != nullptr) {
      last = last->next;
      ++n;
    }
    local->head = last->next;
    local->count -= n;
    last->next = nullptr;
    if (RingOf(c)->TryPush(Chain{first, n}) != ChainRing::PushResult::kOk) {
      FreeChain(first);
    }
  }
};

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_NODE_CACHE_H_
