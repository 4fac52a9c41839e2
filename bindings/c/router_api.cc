// The C ABI, part 2: manifests, router options, the router, sinks, metrics.

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/status.h"
#include "bindings/c/edgeroute.h"
#include "bindings/c/internal.h"
#include "message/message.h"
#include "query/manifest.h"
#include "query/query.h"
#include "router/router.h"
#include "store/store.h"

using edgeroute::router::DeliveryBatch;
using edgeroute::router::DeliveryOutcome;
using edgeroute::MessageBuilder;
using edgeroute::MessageView;
using edgeroute::router::Router;
using edgeroute::router::RouterOptions;
using edgeroute::c_api::Bytes;
using edgeroute::c_api::CopyToCallerStruct;
using edgeroute::c_api::Guard;
using edgeroute::c_api::NullArgument;
using edgeroute::c_api::ValidBytes;

// A view handed out for a delivered message is the router's own MessageView,
// reinterpreted: edgeroute_view_t is a standard-layout struct whose only
// member is a MessageView, so the two are pointer-interconvertible and no
// copy is made.
static_assert(std::is_standard_layout<edgeroute_view_t>::value,
              "edgeroute_view_t must stay a plain wrapper of MessageView");
static_assert(sizeof(edgeroute_view_t) == sizeof(MessageView),
              "edgeroute_view_t must stay a plain wrapper of MessageView");

struct edgeroute_options_t {
  std::string store_directory;
  int durability = EDGEROUTE_DURABILITY_PROCESS;
  uint64_t store_max_bytes = 0;
  RouterOptions router;
};

// The batch wrapper a sink sees. One per registered sink, reused for every
// batch: the router hands an endpoint's next batch only after every message
// of the previous one was completed and Deliver returned.
struct edgeroute_batch_t {
  std::string endpoint_id;
  DeliveryBatch* batch = nullptr;
  // acked[i] != 0 once message i was acknowledged. exchange(acq_rel) makes
  // exactly one ack per message win; reset with relaxed stores before the
  // batch is published to the callback (the call itself orders them).
  std::unique_ptr<std::atomic<uint8_t>[]> acked;
  size_t capacity = 0;
  size_t size = 0;
};

namespace {

// Adapts a C callback to the router's Sink interface.
class CSink final : public edgeroute::router::Sink {
 public:
  CSink(absl::string_view endpoint_id, void* state, edgeroute_sink_fn deliver)
      : state_(state), deliver_(deliver) {
    wrapper_.endpoint_id = std::string(endpoint_id);
  }
  ~CSink() override {
    if (destructor_ != nullptr) destructor_(state_);
  }

  // From now on the sink destroys the state with `destructor` (may be null).
  void AdoptState(edgeroute_sink_destructor_fn destructor) {
    destructor_ = destructor;
  }

  void Deliver(DeliveryBatch* batch) override {
    const size_t n = batch->size();
    if (n > wrapper_.capacity) {
      wrapper_.acked.reset(new std::atomic<uint8_t>[n]);
      wrapper_.capacity = n;
    }
    for (size_t i = 0; i < n; ++i) {
      wrapper_.acked[i].store(0, std::memory_order_relaxed);
    }
    wrapper_.size = n;
    wrapper_.batch = batch;
    deliver_(state_, &wrapper_);
  }

 private:
  void* state_;
  edgeroute_sink_destructor_fn destructor_ = nullptr;
  edgeroute_sink_fn deliver_;
  edgeroute_batch_t wrapper_;
};

absl::Status MakeRouterOptions(const edgeroute_options_t& in,
                               RouterOptions* out) {
  *out = in.router;
  if (out->dispatch_workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dispatch threads must be >= 1, got ", out->dispatch_workers));
  }
  if (out->admission_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("admission timeout must be >= 0");
  }
  if (out->endpoint_batch_size < 1) {
    return absl::InvalidArgumentError("max batch size must be >= 1");
  }
  if (out->retry.initial <= absl::ZeroDuration() ||
      out->retry.max < out->retry.initial) {
    return absl::InvalidArgumentError("retry backoff needs 0 < initial <= max");
  }
  if (in.durability != EDGEROUTE_DURABILITY_PROCESS &&
      in.durability != EDGEROUTE_DURABILITY_POWER) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown durability ", in.durability,
                     " (EDGEROUTE_DURABILITY_PROCESS or _POWER)"));
  }
  return absl::OkStatus();
}

void FillDiagnostics(absl::string_view manifest,
                     const edgeroute::query::CompileOptions& options,
                     edgeroute_diagnostics_t* diags) {
  if (diags == nullptr) return;
  std::vector<edgeroute::query::Diagnostic> found;
  (void)edgeroute::query::CompileEdgeHubConfig(manifest, options, &found);
  edgeroute::c_api::StoreDiagnostics(found, diags);
}

// A 8-byte aligned copy of `data` in per-thread storage, reused across calls
// (FlatBuffers needs alignment; callers' buffers may have any).
absl::Span<const uint8_t> Aligned(const char* data, size_t len) {
  if (reinterpret_cast<uintptr_t>(data) % 8 == 0) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(data), len);
  }
  thread_local std::vector<uint64_t> storage;
  storage.resize((len + 7) / 8);
  std::memcpy(storage.data(), data, len);
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(storage.data()),
                             len);
}

}  // namespace

struct edgeroute_router_t {
  std::unique_ptr<edgeroute::store::Store> store;
  std::unique_ptr<Router> router;
  std::string device_id;
  // Set once by the first close; read without the mutex by every call, to
  // fail fast after close. acquire/release: a thread that sees true also
  // sees the close's effects.
  std::atomic<bool> closed{false};
  std::mutex close_mu;  // serialises close

  absl::Status CheckOpen() const {
    if (closed.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError("router is closed");
    }
    return absl::OkStatus();
  }

  absl::Status Close() {
    std::lock_guard<std::mutex> lock(close_mu);
    if (closed.load(std::memory_order_acquire)) return absl::OkStatus();
    closed.store(true, std::memory_order_release);
    absl::Status status = router->Close();
    if (store != nullptr) {
      absl::Status s = store->Close();
      if (status.ok()) status = s;
    }
    return status;
  }

  ~edgeroute_router_t() {
    // The router (and its sinks' states) goes before the store it uses.
    router.reset();
    store.reset();
  }
};

extern "C" {

// ------------------------------------------------------------------ checks

int edgeroute_check_manifest(const char* json, size_t len,
                             edgeroute_diagnostics_t* diags, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (diags != nullptr) diags->entries.clear();
    if (!ValidBytes(json, len)) return NullArgument("manifest");
    std::vector<edgeroute::query::Diagnostic> found;
    edgeroute::query::CompileOptions options;
    options.device_id = RouterOptions().device_id;
    auto compiled = edgeroute::query::CompileEdgeHubConfig(Bytes(json, len),
                                                           options, &found);
    edgeroute::c_api::StoreDiagnostics(found, diags);
    return compiled.status();
  });
}

// ----------------------------------------------------------------- options

edgeroute_options_t* edgeroute_options_create(void) {
  try {
    return new edgeroute_options_t;
  } catch (...) {
    return nullptr;
  }
}

void edgeroute_options_destroy(edgeroute_options_t* options) { delete options; }

void edgeroute_options_set_store_directory(edgeroute_options_t* options,
                                           const char* dir, size_t len) {
  if (options == nullptr || !ValidBytes(dir, len)) return;
  try {
    options->store_directory.assign(Bytes(dir, len).data(), len);
  } catch (...) {
  }
}

void edgeroute_options_set_durability(edgeroute_options_t* options,
                                      int durability) {
  if (options != nullptr) options->durability = durability;
}

void edgeroute_options_set_store_max_bytes(edgeroute_options_t* options,
                                           uint64_t max_bytes) {
  if (options != nullptr) options->store_max_bytes = max_bytes;
}

void edgeroute_options_set_device_id(edgeroute_options_t* options,
                                     const char* id, size_t len) {
  if (options == nullptr || !ValidBytes(id, len)) return;
  try {
    options->router.device_id.assign(Bytes(id, len).data(), len);
  } catch (...) {
  }
}

void edgeroute_options_set_dispatch_threads(edgeroute_options_t* options,
                                            int threads) {
  if (options != nullptr) options->router.dispatch_workers = threads;
}

void edgeroute_options_set_admission_timeout_us(edgeroute_options_t* options,
                                                int64_t micros) {
  if (options != nullptr) {
    options->router.admission_timeout = absl::Microseconds(micros);
  }
}

void edgeroute_options_set_max_batch_size(edgeroute_options_t* options,
                                          size_t messages) {
  if (options != nullptr) options->router.endpoint_batch_size = messages;
}

void edgeroute_options_set_retry_backoff_us(edgeroute_options_t* options,
                                            int64_t initial_us,
                                            int64_t max_us) {
  if (options == nullptr) return;
  options->router.retry.initial = absl::Microseconds(initial_us);
  options->router.retry.max = absl::Microseconds(max_us);
}

void edgeroute_options_set_drain_on_close(edgeroute_options_t* options,
                                          uint8_t drain) {
  if (options != nullptr) options->router.drain_on_close = drain != 0;
}

// ------------------------------------------------------------------ router

int edgeroute_router_create(const edgeroute_options_t* options,
                            const char* manifest, size_t len,
                            edgeroute_diagnostics_t* diags,
                            edgeroute_router_t** out, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (diags != nullptr) diags->entries.clear();
    if (!ValidBytes(manifest, len)) return NullArgument("manifest");
    if (out == nullptr) return NullArgument("out");
    const edgeroute_options_t defaults;
    const edgeroute_options_t& in = options != nullptr ? *options : defaults;
    RouterOptions router_options;
    EDGEROUTE_RETURN_IF_ERROR(MakeRouterOptions(in, &router_options));

    edgeroute::query::CompileOptions compile_options;
    compile_options.device_id = router_options.device_id;
    FillDiagnostics(Bytes(manifest, len), compile_options, diags);

    auto handle = std::make_unique<edgeroute_router_t>();
    handle->device_id = router_options.device_id;
    if (!in.store_directory.empty()) {
      edgeroute::store::StoreOptions store_options;
      store_options.directory = in.store_directory;
      store_options.durability = in.durability == EDGEROUTE_DURABILITY_POWER
                                     ? edgeroute::store::Durability::kPower
                                     : edgeroute::store::Durability::kProcess;
      store_options.max_bytes = in.store_max_bytes;
      EDGEROUTE_ASSIGN_OR_RETURN(handle->store,
                                 edgeroute::store::Store::Open(store_options));
      router_options.store = handle->store.get();
    }
    EDGEROUTE_ASSIGN_OR_RETURN(
        handle->router, Router::Create(router_options, Bytes(manifest, len)));
    *out = handle.release();
    return absl::OkStatus();
  });
}

int edgeroute_router_update_routes(edgeroute_router_t* router,
                                   const char* manifest, size_t len,
                                   edgeroute_diagnostics_t* diags,
                                   char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (diags != nullptr) diags->entries.clear();
    if (router == nullptr) return NullArgument("router");
    if (!ValidBytes(manifest, len)) return NullArgument("manifest");
    EDGEROUTE_RETURN_IF_ERROR(router->CheckOpen());
    edgeroute::query::CompileOptions compile_options;
    compile_options.device_id = router->device_id;
    FillDiagnostics(Bytes(manifest, len), compile_options, diags);
    return router->router->UpdateRoutes(Bytes(manifest, len));
  });
}

void edgeroute_router_destroy(edgeroute_router_t* router) {
  if (router == nullptr) return;
  try {
    (void)router->Close();
  } catch (...) {
  }
  delete router;
}

int edgeroute_router_close(edgeroute_router_t* router, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    return router->Close();
  });
}

int edgeroute_router_wait_idle(edgeroute_router_t* router, int64_t timeout_us,
                               char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    EDGEROUTE_RETURN_IF_ERROR(router->CheckOpen());
    return router->router->WaitIdle(absl::Microseconds(timeout_us));
  });
}

// ----------------------------------------------------------------- sending

int edgeroute_router_send(edgeroute_router_t* router, edgeroute_message_t* msg,
                          char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (msg == nullptr) return NullArgument("message");
    return router->router->SendView(edgeroute::c_api::Finish(msg).view);
  });
}

int edgeroute_router_send_encoded(edgeroute_router_t* router, const char* data,
                                  size_t len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (data == nullptr) return NullArgument("data");
    auto bytes = Aligned(data, len);
    // Verified here whatever the router's own setting says: these bytes come
    // from outside.
    EDGEROUTE_ASSIGN_OR_RETURN(MessageView view, MessageView::Verify(bytes));
    return router->router->SendView(view);
  });
}

int edgeroute_router_send_batch(edgeroute_router_t* router,
                                edgeroute_message_t* const* msgs, size_t count,
                                size_t* accepted, char** errptr) {
  if (accepted != nullptr) *accepted = 0;
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (msgs == nullptr && count > 0) return NullArgument("messages");
    EDGEROUTE_RETURN_IF_ERROR(router->CheckOpen());
    for (size_t i = 0; i < count; ++i) {
      if (msgs[i] == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("message ", i, " is NULL"));
      }
      EDGEROUTE_RETURN_IF_ERROR(
          router->router->SendView(edgeroute::c_api::Finish(msgs[i]).view));
      if (accepted != nullptr) *accepted = i + 1;
    }
    return absl::OkStatus();
  });
}

int edgeroute_router_send_bodies(edgeroute_router_t* router,
                                 edgeroute_message_t* prototype,
                                 const char* const* bodies,
                                 const size_t* lengths, size_t count,
                                 size_t* accepted, char** errptr) {
  if (accepted != nullptr) *accepted = 0;
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (count > 0 && bodies == nullptr) return NullArgument("bodies");
    if (count > 0 && lengths == nullptr) return NullArgument("lengths");
    EDGEROUTE_RETURN_IF_ERROR(router->CheckOpen());
    MessageView proto;
    if (prototype != nullptr) proto = edgeroute::c_api::Finish(prototype).view;
    // One builder per thread, reused: no allocation per message after the
    // first few.
    thread_local MessageBuilder builder;
    for (size_t i = 0; i < count; ++i) {
      if (!ValidBytes(bodies[i], lengths[i])) {
        return absl::InvalidArgumentError(absl::StrCat("body ", i, " is NULL"));
      }
      builder.Clear();
      builder.SetBody(Bytes(bodies[i], lengths[i]));
      if (!proto.empty()) {
        for (size_t p = 0; p < proto.property_count(); ++p) {
          auto kv = proto.property(p);
          if (kv.second.is_null()) {
            builder.AddNullProperty(kv.first);
          } else {
            builder.AddProperty(kv.first, kv.second.value);
          }
        }
        for (size_t p = 0; p < proto.system_property_count(); ++p) {
          auto kv = proto.system_property(p);
          if (kv.second.is_null()) {
            builder.AddNullSystemProperty(kv.first);
          } else {
            builder.AddSystemProperty(kv.first, kv.second.value);
          }
        }
        builder.SetSource(proto.source());
      }
      builder.Finish();
      EDGEROUTE_RETURN_IF_ERROR(router->router->SendView(builder.view()));
      if (accepted != nullptr) *accepted = i + 1;
    }
    return absl::OkStatus();
  });
}

// ------------------------------------------------------------------- sinks

int edgeroute_router_set_sink(edgeroute_router_t* router,
                              const char* endpoint_id, size_t len, void* state,
                              edgeroute_sink_destructor_fn destructor,
                              edgeroute_sink_fn deliver, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (!ValidBytes(endpoint_id, len)) return NullArgument("endpoint_id");
    if (len == 0) return absl::InvalidArgumentError("endpoint id is empty");
    EDGEROUTE_RETURN_IF_ERROR(router->CheckOpen());
    absl::string_view id = Bytes(endpoint_id, len);
    std::shared_ptr<edgeroute::router::Sink> sink;
    if (deliver != nullptr) {
      // Constructed without the destructor so that a failure below leaves
      // `state` with the caller, as documented.
      auto c_sink = std::make_shared<CSink>(id, state, deliver);
      sink = c_sink;
      EDGEROUTE_RETURN_IF_ERROR(router->router->SetSink(id, sink));
      // Registered: from now on the sink owns the state. No race with
      // ~CSink: our reference keeps it alive until after this write.
      c_sink->AdoptState(destructor);
      return absl::OkStatus();
    }
    return router->router->SetSink(id, nullptr);
  });
}

size_t edgeroute_batch_count(const edgeroute_batch_t* batch) {
  return batch == nullptr ? 0 : batch->size;
}

const char* edgeroute_batch_endpoint(const edgeroute_batch_t* batch,
                                     size_t* len) {
  if (batch == nullptr) {
    if (len != nullptr) *len = 0;
    return "";
  }
  if (len != nullptr) *len = batch->endpoint_id.size();
  return batch->endpoint_id.c_str();
}

int64_t edgeroute_batch_priority(const edgeroute_batch_t* batch) {
  if (batch == nullptr || batch->batch == nullptr) return -1;
  return batch->batch->priority();
}

int edgeroute_batch_attempt(const edgeroute_batch_t* batch) {
  if (batch == nullptr || batch->batch == nullptr) return -1;
  return batch->batch->attempt();
}

const edgeroute_view_t* edgeroute_batch_get(const edgeroute_batch_t* batch,
                                            size_t index) {
  if (batch == nullptr || index >= batch->size) return nullptr;
  // acquire: pairs with the exchange in ack (not required for safety of the
  // router's memory, only to report acknowledged messages reliably).
  if (batch->acked[index].load(std::memory_order_acquire) != 0) return nullptr;
  return reinterpret_cast<const edgeroute_view_t*>(
      &batch->batch->message(index));
}

}  // extern "C"

namespace {

absl::Status ToOutcome(int outcome, DeliveryOutcome* out) {
  switch (outcome) {
    case EDGEROUTE_DELIVERED:
      *out = DeliveryOutcome::kDelivered;
      return absl::OkStatus();
    case EDGEROUTE_RETRY:
      *out = DeliveryOutcome::kRetry;
      return absl::OkStatus();
    case EDGEROUTE_REJECT:
      *out = DeliveryOutcome::kReject;
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown outcome ", outcome,
          " (EDGEROUTE_DELIVERED, EDGEROUTE_RETRY or EDGEROUTE_REJECT)"));
  }
}

}  // namespace

extern "C" {

int edgeroute_batch_ack(edgeroute_batch_t* batch, size_t index, int outcome,
                        char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (batch == nullptr) return NullArgument("batch");
    DeliveryOutcome o;
    EDGEROUTE_RETURN_IF_ERROR(ToOutcome(outcome, &o));
    if (index >= batch->size) {
      return absl::OutOfRangeError(
          absl::StrCat("message index ", index, " >= count ", batch->size));
    }
    // acq_rel: exactly one acknowledgement per message wins.
    if (batch->acked[index].exchange(1, std::memory_order_acq_rel) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("message ", index, " was already acknowledged"));
    }
    batch->batch->Complete(index, o);
    return absl::OkStatus();
  });
}

int edgeroute_batch_ack_all(edgeroute_batch_t* batch, int outcome,
                            char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (batch == nullptr) return NullArgument("batch");
    DeliveryOutcome o;
    EDGEROUTE_RETURN_IF_ERROR(ToOutcome(outcome, &o));
    // Claim every message not acknowledged yet, remembering the last one:
    // after its Complete the router may hand this wrapper the endpoint's
    // next batch, so nothing of the wrapper is read after that. A message
    // claimed here reads 2 in `acked`, one claimed by edgeroute_batch_ack 1.
    DeliveryBatch* inner = batch->batch;
    const size_t n = batch->size;
    size_t last = n;
    for (size_t i = 0; i < n; ++i) {
      uint8_t expected = 0;
      if (batch->acked[i].compare_exchange_strong(expected, 2,
                                                  std::memory_order_acq_rel,
                                                  std::memory_order_relaxed)) {
        last = i;
      }
    }
    if (last == n) return absl::OkStatus();
    for (size_t i = 0; i < last; ++i) {
      if (batch->acked[i].load(std::memory_order_relaxed) == 2) {
        inner->Complete(i, o);
      }
    }
    inner->Complete(last, o);
    return absl::OkStatus();
  });
}

// ----------------------------------------------------------------- metrics

int edgeroute_router_get_metrics(edgeroute_router_t* router,
                                 edgeroute_metrics_t* out, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (out == nullptr) return NullArgument("out");
    edgeroute::router::RouterMetrics m = router->router->GetMetrics();
    edgeroute_metrics_t r;
    std::memset(&r, 0, sizeof(r));
    r.received = m.received;
    r.orphaned = m.orphaned;
    r.rejected_full = m.rejected_full;
    r.rejected_invalid = m.rejected_invalid;
    r.route_updates = m.route_updates;
    for (const edgeroute::router::EndpointMetrics& e : m.endpoints) {
      r.enqueued += e.enqueued;
      r.delivered += e.delivered;
      r.retried += e.retried;
      r.expired += e.expired;
      r.rejected += e.rejected;
      r.dropped += e.dropped_queue_full + e.dropped_dead + e.dropped_removed +
                   e.dropped_close;
      r.queue_depth += e.queue_depth;
    }
    r.endpoints = m.endpoints.size();
    r.routes = m.routes.size();
    r.struct_size = sizeof(r);
    return CopyToCallerStruct(
        r, offsetof(edgeroute_metrics_t, received) + sizeof(r.received),
        "edgeroute_metrics_t", out);
  });
}

int edgeroute_router_endpoint_metrics(edgeroute_router_t* router,
                                      const char* endpoint_id, size_t len,
                                      edgeroute_endpoint_metrics_t* out,
                                      char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (!ValidBytes(endpoint_id, len)) return NullArgument("endpoint_id");
    if (out == nullptr) return NullArgument("out");
    absl::string_view id = Bytes(endpoint_id, len);
    edgeroute::router::RouterMetrics m = router->router->GetMetrics();
    for (const edgeroute::router::EndpointMetrics& e : m.endpoints) {
      if (e.endpoint_id != id) continue;
      edgeroute_endpoint_metrics_t r;
      std::memset(&r, 0, sizeof(r));
      r.enqueued = e.enqueued;
      r.delivered = e.delivered;
      r.retried = e.retried;
      r.expired = e.expired;
      r.rejected = e.rejected;
      r.dropped = e.dropped_queue_full + e.dropped_dead + e.dropped_removed +
                  e.dropped_close;
      r.queue_depth = e.queue_depth;
      r.oldest_message_age_us = e.oldest_message_age_micros;
      r.latency_p50_us = e.latency.QuantileMicros(0.5);
      r.latency_p99_us = e.latency.QuantileMicros(0.99);
      r.has_sink = e.has_sink ? 1 : 0;
      r.dead = e.dead ? 1 : 0;
      r.struct_size = sizeof(r);
      return CopyToCallerStruct(
          r,
          offsetof(edgeroute_endpoint_metrics_t, enqueued) + sizeof(r.enqueued),
          "edgeroute_endpoint_metrics_t", out);
    }
    return absl::NotFoundError(
        absl::StrCat("no endpoint '", id, "' in this router"));
  });
}

int edgeroute_router_prometheus_text(edgeroute_router_t* router, char** text,
                                     size_t* len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (router == nullptr) return NullArgument("router");
    if (text == nullptr) return NullArgument("text");
    std::string s = router->router->PrometheusText();
    char* copy = static_cast<char*>(std::malloc(s.size() + 1));
    if (copy == nullptr) return absl::ResourceExhaustedError("out of memory");
    std::memcpy(copy, s.data(), s.size());
    copy[s.size()] = '\0';
    *text = copy;
    if (len != nullptr) *len = s.size();
    return absl::OkStatus();
  });
}

}  // extern "C"
