// Private to the C ABI implementation: the structs behind the opaque handles
// of edgeroute.h shared by its source files, and the error plumbing every
// entry point uses. Never installed, never included by users.

#ifndef EDGEROUTE_BINDINGS_C_INTERNAL_H_
#define EDGEROUTE_BINDINGS_C_INTERNAL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bindings/c/edgeroute.h"
#include "message/message.h"
#include "query/query.h"

struct edgeroute_view_t {
  edgeroute::MessageView view;
};

struct edgeroute_diagnostics_t {
  struct Entry {
    int severity = EDGEROUTE_SEVERITY_ERROR;
    std::string message;
    std::string route_name;
    std::string excerpt;
    std::string suggestion;
    uint32_t line = 0;
    uint32_t column = 0;
    uint32_t end_column = 0;
  };
  std::vector<Entry> entries;
};

// A message handle: a MessageBuilder, or a verified copy of encoded bytes.
// Thread-safety: none (documented in edgeroute.h).
struct edgeroute_message_t {
  edgeroute::MessageBuilder builder;
  // True once the bytes exist (Finish() called or encoded bytes loaded);
  // then `view` is valid.
  bool finished = false;
  // True when the message came from edgeroute_message_set_encoded; the bytes
  // are then in `encoded` (8-byte aligned storage).
  bool from_encoded = false;
  std::vector<uint64_t> encoded;
  edgeroute_view_t view;
};

namespace edgeroute::c_api {

// Finishes `msg` if needed; returns its view.
const edgeroute_view_t& Finish(edgeroute_message_t* msg);

// Returns status.code() as an int, storing the message in *errptr (freeing
// what was there) when errptr is not null and the status is an error.
int SaveError(char** errptr, const absl::Status& status);

// Appends `diagnostics` to *out (when out is not null), moving the
// "route '<name>': " prefix the compilers put on messages to route_name.
void StoreDiagnostics(const std::vector<query::Diagnostic>& diagnostics,
                      edgeroute_diagnostics_t* out);

// Runs `body` (returning absl::Status) and converts the result, or any
// exception it throws, to a C status code plus *errptr.
template <typename Body>
int Guard(char** errptr, Body&& body) {
  try {
    absl::Status status = body();
    if (status.ok()) return EDGEROUTE_OK;
    return SaveError(errptr, status);
  } catch (const std::bad_alloc&) {
    return SaveError(errptr, absl::ResourceExhaustedError("out of memory"));
  } catch (const std::exception& e) {
    return SaveError(errptr, absl::InternalError(e.what()));
  } catch (...) {
    return SaveError(errptr, absl::InternalError("unknown exception"));
  }
}

// Copies `filled` into the caller's struct *out as far as out->struct_size
// reaches (edgeroute.h: a struct from an older header is a prefix of this
// one), never writing past struct_size and keeping struct_size itself.
// `min_size` is the size of struct_size and the first field;
// InvalidArgument below it (0 means the caller forgot to set it).
template <typename T>
absl::Status CopyToCallerStruct(const T& filled, size_t min_size,
                                const char* type_name, T* out) {
  static_assert(offsetof(T, struct_size) == 0,
                "struct_size is the first member");
  const size_t size = out->struct_size;
  if (size < min_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(type_name, ".struct_size is ", size, ": set it to sizeof(",
                     type_name, ")"));
  }
  const size_t n = std::min(size, sizeof(T));
  std::memcpy(reinterpret_cast<char*>(out) + sizeof(size_t),
              reinterpret_cast<const char*>(&filled) + sizeof(size_t),
              n - sizeof(size_t));
  return absl::OkStatus();
}

inline absl::Status NullArgument(const char* name) {
  return absl::InvalidArgumentError(std::string(name) + " is NULL");
}

// (data, len) with data == NULL allowed only when len == 0.
inline bool ValidBytes(const char* data, size_t len) {
  return data != nullptr || len == 0;
}

inline absl::string_view Bytes(const char* data, size_t len) {
  return len == 0 ? absl::string_view() : absl::string_view(data, len);
}

}  // namespace edgeroute::c_api

#endif  // EDGEROUTE_BINDINGS_C_INTERNAL_H_
