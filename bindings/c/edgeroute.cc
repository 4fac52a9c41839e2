// The C ABI, part 1: version, errors, diagnostics, messages, views,
// conditions and route checks. The router half is in router_api.cc.

#include "bindings/c/edgeroute.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "base/status.h"
#include "bindings/c/internal.h"
#include "message/message.h"
#include "query/query.h"

using edgeroute::MessageView;
using edgeroute::PropertyValue;
using edgeroute::c_api::Bytes;
using edgeroute::c_api::CopyToCallerStruct;
using edgeroute::c_api::Guard;
using edgeroute::c_api::NullArgument;
using edgeroute::c_api::ValidBytes;

namespace edgeroute::c_api {

int SaveError(char** errptr, const absl::Status& status) {
  if (status.ok()) return EDGEROUTE_OK;
  if (errptr != nullptr) {
    std::free(*errptr);
    absl::string_view text = status.message();
    char* copy = static_cast<char*>(std::malloc(text.size() + 1));
    if (copy != nullptr) {
      std::memcpy(copy, text.data(), text.size());
      copy[text.size()] = '\0';
    }
    *errptr = copy;
  }
  return static_cast<int>(status.code());
}

const edgeroute_view_t& Finish(edgeroute_message_t* msg) {
  if (!msg->finished) {
    absl::Span<const uint8_t> bytes = msg->builder.Finish();
    msg->view.view = MessageView::FromTrustedBytes(bytes);
    msg->finished = true;
  }
  return msg->view;
}

void StoreDiagnostics(const std::vector<query::Diagnostic>& diagnostics,
                      edgeroute_diagnostics_t* out) {
  if (out == nullptr) return;
  for (const query::Diagnostic& d : diagnostics) {
    edgeroute_diagnostics_t::Entry e;
    e.severity =
        d.is_error() ? EDGEROUTE_SEVERITY_ERROR : EDGEROUTE_SEVERITY_WARNING;
    e.message = d.message;
    // The compilers prefix "route '<name>': "; move it to route_name.
    constexpr absl::string_view kPrefix = "route '";
    if (absl::StartsWith(e.message, kPrefix)) {
      size_t end = e.message.find("': ", kPrefix.size());
      if (end != std::string::npos) {
        e.route_name = e.message.substr(kPrefix.size(), end - kPrefix.size());
        e.message.erase(0, end + 3);
      }
    }
    e.excerpt = d.excerpt;
    e.suggestion = d.suggestion;
    e.line = d.line > 0 ? static_cast<uint32_t>(d.line) : 0;
    e.column = d.column > 0 ? static_cast<uint32_t>(d.column) : 0;
    e.end_column = d.end_column > 0 ? static_cast<uint32_t>(d.end_column) : 0;
    out->entries.push_back(std::move(e));
  }
}

}  // namespace edgeroute::c_api

namespace {

// The name CheckRoute gives its single route (diagnostics strip it again).
constexpr char kSingleRouteName[] = "route";

// absl::StatusCode names without the prefix, indexed by code.
constexpr const char* kStatusNames[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

void ClearDiagnostics(edgeroute_diagnostics_t* diags) {
  if (diags != nullptr) diags->entries.clear();
}

absl::Status CheckMutable(edgeroute_message_t* msg) {
  if (msg == nullptr) return NullArgument("message");
  if (msg->finished) {
    return absl::FailedPreconditionError(
        "message is finished (sent, evaluated or encoded); call "
        "edgeroute_message_clear to start a new one");
  }
  return absl::OkStatus();
}

int PropertyResult(const PropertyValue& v, const char** value,
                   size_t* value_len) {
  if (v.has_string()) {
    if (value != nullptr)
      *value = v.value.data() == nullptr ? "" : v.value.data();
    if (value_len != nullptr) *value_len = v.value.size();
    return EDGEROUTE_PROPERTY_STRING;
  }
  return v.is_null() ? EDGEROUTE_PROPERTY_NULL : EDGEROUTE_PROPERTY_MISSING;
}

int IndexedProperty(const std::pair<absl::string_view, PropertyValue>& p,
                    const char** key, size_t* key_len, const char** value,
                    size_t* value_len) {
  if (key != nullptr) *key = p.first.data() == nullptr ? "" : p.first.data();
  if (key_len != nullptr) *key_len = p.first.size();
  return PropertyResult(p.second, value, value_len);
}

const char* ReturnBytes(absl::string_view s, size_t* len) {
  if (len != nullptr) *len = s.size();
  return s.data() == nullptr ? "" : s.data();
}

}  // namespace

// ------------------------------------------------------------------ version

extern "C" {

const char* edgeroute_version(void) { return EDGEROUTE_VERSION_STRING; }

int edgeroute_version_number(void) { return EDGEROUTE_VERSION_NUMBER; }

const char* edgeroute_status_name(int code) {
  if (code < 0 || code >= static_cast<int>(sizeof(kStatusNames) /
                                           sizeof(kStatusNames[0]))) {
    return "UNKNOWN";
  }
  return kStatusNames[code];
}

void edgeroute_free(void* ptr) { std::free(ptr); }

// -------------------------------------------------------------- diagnostics

edgeroute_diagnostics_t* edgeroute_diagnostics_create(void) {
  try {
    return new edgeroute_diagnostics_t;
  } catch (...) {
    return nullptr;
  }
}

void edgeroute_diagnostics_destroy(edgeroute_diagnostics_t* diags) {
  delete diags;
}

size_t edgeroute_diagnostics_count(const edgeroute_diagnostics_t* diags) {
  return diags == nullptr ? 0 : diags->entries.size();
}

size_t edgeroute_diagnostics_error_count(const edgeroute_diagnostics_t* diags) {
  if (diags == nullptr) return 0;
  size_t n = 0;
  for (const auto& e : diags->entries) {
    if (e.severity == EDGEROUTE_SEVERITY_ERROR) ++n;
  }
  return n;
}

int edgeroute_diagnostics_get(const edgeroute_diagnostics_t* diags,
                              size_t index, edgeroute_diagnostic_t* out,
                              char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (diags == nullptr) return NullArgument("diagnostics");
    if (out == nullptr) return NullArgument("out");
    if (index >= diags->entries.size()) {
      return absl::OutOfRangeError(absl::StrCat(
          "diagnostic index ", index, " >= count ", diags->entries.size()));
    }
    const auto& e = diags->entries[index];
    edgeroute_diagnostic_t d;
    d.struct_size = sizeof(d);
    d.severity = e.severity;
    d.message = e.message.c_str();
    d.route_name = e.route_name.c_str();
    d.line = e.line;
    d.column = e.column;
    d.end_column = e.end_column;
    d.excerpt = e.excerpt.c_str();
    d.suggestion = e.suggestion.c_str();
    return CopyToCallerStruct(
        d, offsetof(edgeroute_diagnostic_t, severity) + sizeof(d.severity),
        "edgeroute_diagnostic_t", out);
  });
}

// ------------------------------------------------------------------- checks

int edgeroute_check_route(const char* route, size_t len,
                          edgeroute_diagnostics_t* diags, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    ClearDiagnostics(diags);
    if (!ValidBytes(route, len)) return NullArgument("route");
    edgeroute::query::RouteSpec spec;
    spec.name = kSingleRouteName;
    spec.text = std::string(Bytes(route, len));
    std::vector<edgeroute::query::Diagnostic> found;
    auto set = edgeroute::query::RouteSet::Compile(
        absl::MakeConstSpan(&spec, 1), edgeroute::query::CompileOptions(),
        &found);
    edgeroute::c_api::StoreDiagnostics(found, diags);
    if (diags != nullptr) {
      for (auto& e : diags->entries) e.route_name.clear();
    }
    if (set.ok()) return absl::OkStatus();
    // Report the first error without the name given to the route above.
    for (const auto& d : found) {
      if (!d.is_error()) continue;
      std::string message = d.message;
      constexpr absl::string_view kPrefix = "route 'route': ";
      if (absl::StartsWith(message, kPrefix)) message.erase(0, kPrefix.size());
      return absl::InvalidArgumentError(
          absl::StrCat(d.line, ":", d.column, ": ", message));
    }
    return set.status();
  });
}

// ----------------------------------------------------------------- messages

edgeroute_message_t* edgeroute_message_create(void) {
  try {
    return new edgeroute_message_t;
  } catch (...) {
    return nullptr;
  }
}

void edgeroute_message_destroy(edgeroute_message_t* msg) { delete msg; }

void edgeroute_message_clear(edgeroute_message_t* msg) {
  if (msg == nullptr) return;
  msg->builder.Clear();
  msg->finished = false;
  msg->from_encoded = false;
  msg->view.view = MessageView();
}

int edgeroute_message_set_body(edgeroute_message_t* msg, const char* body,
                               size_t len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    EDGEROUTE_RETURN_IF_ERROR(CheckMutable(msg));
    if (!ValidBytes(body, len)) return NullArgument("body");
    msg->builder.SetBody(Bytes(body, len));
    return absl::OkStatus();
  });
}

int edgeroute_message_add_property(edgeroute_message_t* msg, const char* key,
                                   size_t key_len, const char* value,
                                   size_t value_len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    EDGEROUTE_RETURN_IF_ERROR(CheckMutable(msg));
    if (!ValidBytes(key, key_len)) return NullArgument("key");
    if (value == nullptr) {
      if (value_len != 0) return NullArgument("value");
      msg->builder.AddNullProperty(Bytes(key, key_len));
    } else {
      msg->builder.AddProperty(Bytes(key, key_len), Bytes(value, value_len));
    }
    return absl::OkStatus();
  });
}

int edgeroute_message_add_system_property(edgeroute_message_t* msg,
                                          const char* key, size_t key_len,
                                          const char* value, size_t value_len,
                                          char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    EDGEROUTE_RETURN_IF_ERROR(CheckMutable(msg));
    if (!ValidBytes(key, key_len)) return NullArgument("key");
    if (value == nullptr) {
      if (value_len != 0) return NullArgument("value");
      msg->builder.AddNullSystemProperty(Bytes(key, key_len));
    } else {
      msg->builder.AddSystemProperty(Bytes(key, key_len),
                                     Bytes(value, value_len));
    }
    return absl::OkStatus();
  });
}

int edgeroute_message_set_source(edgeroute_message_t* msg, const char* source,
                                 size_t len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    EDGEROUTE_RETURN_IF_ERROR(CheckMutable(msg));
    if (!ValidBytes(source, len)) return NullArgument("source");
    msg->builder.SetSource(Bytes(source, len));
    return absl::OkStatus();
  });
}

int edgeroute_message_set_encoded(edgeroute_message_t* msg, const char* data,
                                  size_t len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (msg == nullptr) return NullArgument("message");
    if (!ValidBytes(data, len)) return NullArgument("data");
    // Copy into 8-byte aligned storage first: FlatBuffers needs alignment
    // and the caller's bytes may have any.
    std::vector<uint64_t> storage((len + 7) / 8);
    if (len > 0) std::memcpy(storage.data(), data, len);
    auto view = MessageView::Verify(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(storage.data()), len));
    if (!view.ok()) return view.status();
    edgeroute_message_clear(msg);
    msg->encoded = std::move(storage);
    // The vector's heap buffer did not move, so the view stays valid.
    msg->view.view = *view;
    msg->finished = true;
    msg->from_encoded = true;
    return absl::OkStatus();
  });
}

int edgeroute_message_encoded(edgeroute_message_t* msg, const char** data,
                              size_t* len, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (msg == nullptr) return NullArgument("message");
    if (data == nullptr) return NullArgument("data");
    if (len == nullptr) return NullArgument("len");
    auto bytes = edgeroute::c_api::Finish(msg).view.bytes();
    *data = reinterpret_cast<const char*>(bytes.data());
    *len = bytes.size();
    return absl::OkStatus();
  });
}

// -------------------------------------------------------------------- views

const edgeroute_view_t* edgeroute_message_view(edgeroute_message_t* msg) {
  if (msg == nullptr) return nullptr;
  try {
    return &edgeroute::c_api::Finish(msg);
  } catch (...) {
    return nullptr;
  }
}

const char* edgeroute_view_body(const edgeroute_view_t* view, size_t* len) {
  return ReturnBytes(view == nullptr ? absl::string_view() : view->view.body(),
                     len);
}

const char* edgeroute_view_source(const edgeroute_view_t* view, size_t* len) {
  return ReturnBytes(
      view == nullptr ? absl::string_view() : view->view.source(), len);
}

const char* edgeroute_view_encoded(const edgeroute_view_t* view, size_t* len) {
  if (view == nullptr) return ReturnBytes(absl::string_view(), len);
  auto bytes = view->view.bytes();
  return ReturnBytes(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                        bytes.size()),
      len);
}

int64_t edgeroute_view_enqueue_time_us(const edgeroute_view_t* view) {
  return view == nullptr ? 0 : view->view.enqueue_time_us();
}

uint64_t edgeroute_view_sequence_number(const edgeroute_view_t* view) {
  return view == nullptr ? 0 : view->view.sequence_number();
}

size_t edgeroute_view_property_count(const edgeroute_view_t* view) {
  return view == nullptr ? 0 : view->view.property_count();
}

size_t edgeroute_view_system_property_count(const edgeroute_view_t* view) {
  return view == nullptr ? 0 : view->view.system_property_count();
}

int edgeroute_view_property(const edgeroute_view_t* view, size_t index,
                            const char** key, size_t* key_len,
                            const char** value, size_t* value_len) {
  if (view == nullptr || index >= view->view.property_count()) {
    return EDGEROUTE_PROPERTY_MISSING;
  }
  return IndexedProperty(view->view.property(index), key, key_len, value,
                         value_len);
}

int edgeroute_view_system_property(const edgeroute_view_t* view, size_t index,
                                   const char** key, size_t* key_len,
                                   const char** value, size_t* value_len) {
  if (view == nullptr || index >= view->view.system_property_count()) {
    return EDGEROUTE_PROPERTY_MISSING;
  }
  return IndexedProperty(view->view.system_property(index), key, key_len, value,
                         value_len);
}

int edgeroute_view_find_property(const edgeroute_view_t* view, const char* key,
                                 size_t key_len, const char** value,
                                 size_t* value_len) {
  if (view == nullptr || !ValidBytes(key, key_len)) {
    return EDGEROUTE_PROPERTY_MISSING;
  }
  return PropertyResult(view->view.FindProperty(Bytes(key, key_len)), value,
                        value_len);
}

int edgeroute_view_find_system_property(const edgeroute_view_t* view,
                                        const char* key, size_t key_len,
                                        const char** value, size_t* value_len) {
  if (view == nullptr || !ValidBytes(key, key_len)) {
    return EDGEROUTE_PROPERTY_MISSING;
  }
  return PropertyResult(view->view.FindSystemProperty(Bytes(key, key_len)),
                        value, value_len);
}

}  // extern "C"

// --------------------------------------------------------------- conditions

struct edgeroute_condition_t {
  std::unique_ptr<edgeroute::query::CompiledCondition> condition;
  // One cached scratch, taken with exchange(nullptr) and put back with a
  // compare-exchange, so evaluation normally allocates nothing and
  // concurrent callers never share a scratch (the loser of a race makes and
  // frees its own). acq_rel/acquire: the scratch's contents written by the
  // thread that put it back are visible to the thread that takes it.
  mutable std::atomic<edgeroute::query::EvalScratch*> cached{nullptr};

  ~edgeroute_condition_t() { delete cached.load(std::memory_order_acquire); }

  edgeroute::query::Tri Evaluate(const MessageView& view) const {
    std::unique_ptr<edgeroute::query::EvalScratch> scratch(
        cached.exchange(nullptr, std::memory_order_acq_rel));
    if (scratch == nullptr) scratch = condition->NewScratch();
    // The scratch recognises messages by buffer address; a reused
    // edgeroute_message_t keeps its address, so always start afresh.
    edgeroute::query::RouteSet::Reset(scratch.get());
    edgeroute::query::Tri result = condition->Evaluate(view, scratch.get());
    edgeroute::query::EvalScratch* expected = nullptr;
    if (cached.compare_exchange_strong(expected, scratch.get(),
                                       std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
      scratch.release();
    }
    return result;
  }
};

extern "C" {

int edgeroute_condition_compile(const char* condition, size_t len,
                                edgeroute_diagnostics_t* diags,
                                edgeroute_condition_t** out, char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    ClearDiagnostics(diags);
    if (!ValidBytes(condition, len)) return NullArgument("condition");
    if (out == nullptr) return NullArgument("out");
    std::vector<edgeroute::query::Diagnostic> found;
    auto compiled = edgeroute::query::CompiledCondition::Compile(
        Bytes(condition, len), &found);
    edgeroute::c_api::StoreDiagnostics(found, diags);
    if (!compiled.ok()) return compiled.status();
    auto handle = std::make_unique<edgeroute_condition_t>();
    handle->condition = std::move(*compiled);
    *out = handle.release();
    return absl::OkStatus();
  });
}

void edgeroute_condition_destroy(edgeroute_condition_t* condition) {
  delete condition;
}

int edgeroute_condition_evaluate_view(const edgeroute_condition_t* condition,
                                      const edgeroute_view_t* view, int* result,
                                      char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (condition == nullptr) return NullArgument("condition");
    if (view == nullptr) return NullArgument("view");
    if (result == nullptr) return NullArgument("result");
    *result = static_cast<int>(condition->Evaluate(view->view));
    return absl::OkStatus();
  });
}

int edgeroute_condition_evaluate(const edgeroute_condition_t* condition,
                                 edgeroute_message_t* msg, int* result,
                                 char** errptr) {
  return Guard(errptr, [&]() -> absl::Status {
    if (condition == nullptr) return NullArgument("condition");
    if (msg == nullptr) return NullArgument("message");
    if (result == nullptr) return NullArgument("result");
    *result = static_cast<int>(
        condition->Evaluate(edgeroute::c_api::Finish(msg).view));
    return absl::OkStatus();
  });
}

}  // extern "C"

static_assert(static_cast<int>(edgeroute::query::Tri::kFalse) ==
                  EDGEROUTE_FALSE,
              "Tri numbering");
static_assert(static_cast<int>(edgeroute::query::Tri::kTrue) == EDGEROUTE_TRUE,
              "Tri numbering");
static_assert(static_cast<int>(edgeroute::query::Tri::kUndefined) ==
                  EDGEROUTE_UNDEFINED,
              "Tri numbering");
static_assert(static_cast<int>(absl::StatusCode::kResourceExhausted) ==
                  EDGEROUTE_RESOURCE_EXHAUSTED,
              "status numbering");
static_assert(static_cast<int>(absl::StatusCode::kUnauthenticated) ==
                  EDGEROUTE_UNAUTHENTICATED,
              "status numbering");
