// MessageNode: one admitted message, allocated once by Send with its bytes
// inline after the header (from the NodeCache, node_cache.h), shared by
// every endpoint lane it was routed to.
//
// Lifetime: created by Send, owned by the admission ring until a dispatch
// worker takes it; the worker sets `refs` to the number of endpoint lanes it
// is pushed to (or frees it when there are none); each executor calls Unref
// once when it is done with the message; the last one frees it.
//
// Memory ordering: `refs` is set before the node is pushed into any lane
// (the lane push publishes it with release). Unref uses acq_rel so that every
// executor's reads of the bytes happen before the free. A holder that sees
// refs == 1 (acquire) is the only holder left and frees without an RMW.

#ifndef EDGEROUTE_ROUTER_INTERNAL_MESSAGE_NODE_H_
#define EDGEROUTE_ROUTER_INTERNAL_MESSAGE_NODE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "absl/types/span.h"
#include "message/message.h"
#include "router/internal/node_cache.h"

namespace edgeroute::router::internal {

struct SendWaiter;

struct alignas(16) MessageNode {
  std::atomic<uint32_t> refs;
  uint32_t size;
  // Case-insensitive hash of the message source (chooses the worker).
  uint64_t source_hash;
  // Enqueue times (router clock), set by the dispatch worker just before
  // the message is routed: TTL and latency start here.
  int64_t admit_wall_us;
  int64_t admit_mono_us;
  // Store mode: the Send waiting for this message's append; else nullptr.
  SendWaiter* waiter;
  uint64_t reserved;

  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* data() const {
    return reinterpret_cast<const uint8_t*>(this + 1);
  }
  absl::Span<const uint8_t> bytes() const { return {data(), size}; }
  MessageView view() const { return MessageView::FromTrustedBytes(bytes()); }

  static MessageNode* New(absl::Span<const uint8_t> bytes) {
    void* mem = NodeCache::Allocate(sizeof(MessageNode) + bytes.size());
    MessageNode* node = new (mem) MessageNode;
    node->refs.store(0, std::memory_order_relaxed);
    node->size = static_cast<uint32_t>(bytes.size());
    node->source_hash = 0;
    node->admit_wall_us = 0;
    node->admit_mono_us = 0;
    node->waiter = nullptr;
    node->reserved = 0;
    if (!bytes.empty()) std::memcpy(node->data(), bytes.data(), bytes.size());
    return node;
  }

  static void Free(MessageNode* node) {
    const size_t bytes = sizeof(MessageNode) + node->size;
    node->~MessageNode();
    NodeCache::Release(node, bytes);
  }

  // Drops one reference; frees the node when it was the last.
  static void Unref(MessageNode* node) {
    // Acquire: a holder that sees 1 frees; all other holders' releases
    // (their decrements) happen before.
    if (node->refs.load(std::memory_order_acquire) == 1 ||
        node->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      Free(node);
    }
  }
};

static_assert(sizeof(MessageNode) % 8 == 0,
              "message bytes must stay 8-byte aligned for FlatBuffers");

// Case-insensitive (ASCII) hash of a source, 8 bytes at a time: the
// upper-case letters of a word are folded to lower case together (SWAR)
// before a multiply-xorshift mix, so a typical 30-byte source costs four
// multiplies rather than a byte-at-a-time chain of thirty (it was a tenth of
// a message's CPU time in the router benchmark's profile).
inline uint64_t FoldAsciiUpperCase(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  const uint64_t low7 = w & (0x7F * kOnes);
  // Bit 7 of each byte: set from 'A' on, and from past 'Z' on (no carries
  // leave a byte: low7 + 0x3F <= 0xBE).
  const uint64_t from_a = low7 + (0x80 - 'A') * kOnes;
  const uint64_t past_z = low7 + (0x80 - 'Z' - 1) * kOnes;
  const uint64_t upper = from_a & ~past_z & ~w & (0x80 * kOnes);
  return w | (upper >> 2);  // 0x80 >> 2 is the case bit 0x20
}

inline uint64_t MixSourceWord(uint64_t h) {
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 32);
}

inline uint64_t HashSourceIgnoreCase(absl::string_view s) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = MixSourceWord(h ^ FoldAsciiUpperCase(w));
  }
  if (n != 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = MixSourceWord(h ^ FoldAsciiUpperCase(w));
  }
  // The low bits choose the worker: fold the high ones in.
  return MixSourceWord(h ^ (h >> 29));
}

}  // namespace edgeroute::router::internal

#endif  // EDGEROUTE_ROUTER_INTERNAL_MESSAGE_NODE_H_
