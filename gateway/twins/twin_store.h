// Module and device twins as an edge hub keeps them: desired properties from
// the deployment manifest, reported properties from the modules and devices
// themselves, each with the `$version` that IoT Hub's twin protocol carries.
//
//   SetDesired    -- a (re)loaded deployment manifest: each module's
//                    `properties.desired`; returns the patches that modules
//                    subscribed to desired-property updates must receive.
//   Get           -- the twin document a GET request answers with.
//   PatchReported -- a reported-properties PATCH: validated as IoT Hub
//                    validates it, merged (RFC 7396), versioned, and written
//                    to disk before it is acknowledged.
//
// The store knows identities only as (device id, module id) strings; the
// caller has authenticated them. A module id is empty for a device. See
// README.md in this directory for the on-disk format and where each rule
// comes from.

#ifndef EDGEROUTE_GATEWAY_TWINS_TWIN_STORE_H_
#define EDGEROUTE_GATEWAY_TWINS_TWIN_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgeroute::gateway::twins {

struct TwinStoreOptions {
  // Directory that holds the twins durably: one file per identity with
  // reported properties, and one with the desired properties and their
  // versions (so versions keep increasing across restarts). Created when
  // missing (its parent must exist); locked against a second TwinStore.
  // Default: "" -- everything in memory, lost when the store is destroyed.
  std::string dir;

  // The gateway's own device id (`edgeroute run --device`): the manifest's
  // desired properties belong to the modules of this device, and any other
  // identity gets an empty desired document. Default: "" -- a module of any
  // device gets the desired properties of the manifest entry of its name.
  std::string device_id;

  // Most identities that may hold reported properties; a PATCH from one more
  // is refused with ResourceExhausted. Default: 100,000.
  size_t max_twins = 100000;
};

// What SetDesired asks the caller to send to one module.
struct DesiredPatch {
  std::string module_id;  // a module of TwinStoreOptions::device_id
  int64_t version = 0;    // the module's new desired `$version`
  // The IoT Hub desired-properties patch: changed keys (a changed nested
  // object carries only its changed members), removed keys as null, and
  // "$version": version. The payload for
  // `$iothub/twin/PATCH/properties/desired/?$version={version}`.
  std::string patch_json;
};

// Thread-safety: every method may be called from any thread at any time;
// one mutex serializes them (this is control-plane work: a PatchReported
// holds it across its fsyncs). Owns its directory's files while it exists.
class TwinStore {
 public:
  // IoT Hub's limits for reported properties (edgeHub enforces the same).
  // Largest reported document, compact JSON without `$version`, in bytes.
  static constexpr size_t kMaxDocumentBytes = 32 * 1024;
  // Largest PATCH payload accepted for parsing, in bytes.
  static constexpr size_t kMaxPatchBytes = 64 * 1024;
  // Objects and arrays nest at most this deep below the document's root
  // ({"a": {"b": 1}} nests 1 deep). Desired properties obey it too.
  static constexpr int kMaxDepth = 10;
  // Longest property name and longest string value, in UTF-8 bytes.
  static constexpr size_t kMaxNameBytes = 1024;
  static constexpr size_t kMaxStringBytes = 4096;
  // Integers must lie in [kMinInteger, kMaxInteger] (-2^52 .. 2^52-1).
  static constexpr int64_t kMaxInteger = (int64_t{1} << 52) - 1;
  static constexpr int64_t kMinInteger = -(int64_t{1} << 52);

  // Opens (or creates) the store. Errors: the directory cannot be created
  // or read, or is in use by another TwinStore (FailedPrecondition); a file
  // in it is corrupt (DataLoss naming the file -- nothing is dropped
  // silently: move the file away to start that twin afresh). Leftover
  // temporary files of an interrupted write are deleted.
  static absl::StatusOr<std::unique_ptr<TwinStore>> Open(
      const TwinStoreOptions& options);

  ~TwinStore();
  TwinStore(const TwinStore&) = delete;
  TwinStore& operator=(const TwinStore&) = delete;

  // Applies a deployment manifest: a whole manifest ({"modulesContent":
  // {...}}, also wrapped in {"content": ...}), the modulesContent object
  // itself, or a bare $edgeHub desired-properties object (then no module
  // has desired properties). Each module entry other than $edgeAgent and
  // $edgeHub contributes its "properties.desired" object (also accepted as
  // "properties": {"desired": ...}); null members are dropped (null means
  // "absent" in a twin) and top-level members whose names start with '$'
  // ($metadata, $version of an exported twin) are ignored.
  //
  // Every module's desired `$version` is 1 until its desired properties
  // first change, and grows by one with each change; a module whose
  // properties are unchanged keeps its version. A module that leaves the
  // manifest has its properties removed (a change).
  //
  // Returns, per module whose desired properties changed, in module id
  // order, the patch to send. The first manifest a store ever sees returns
  // nothing (it defines version 1). With a directory, the state and versions
  // persist: the first call after a reopen returns the changes since the
  // last manifest of the previous run.
  //
  // Errors (nothing changes): InvalidArgument for bad JSON (with line and
  // column), a module entry or desired properties that are not objects, or
  // desired properties nested deeper than kMaxDepth or larger than
  // kMaxDocumentBytes; an I/O error writing the directory.
  absl::StatusOr<std::vector<DesiredPatch>> SetDesired(
      absl::string_view manifest_json);

  // The twin document for a GET request:
  //   {"desired": {..., "$version": n}, "reported": {..., "$version": m}}
  // A device (empty module_id), a module of another device, and a module
  // without desired properties get {"$version": 1} (or the version it
  // reached) as desired; an identity that never reported gets
  // {"$version": 1} as reported (as a new IoT Hub twin has).
  std::string Get(absl::string_view device_id,
                  absl::string_view module_id) const;

  // Merges a reported-properties patch (a JSON object; a null member
  // removes that property, nested objects merge, anything else replaces)
  // and returns the new reported `$version` (the previous one plus one: the
  // first patch of an identity returns 2). The merged document is on disk
  // (written, fsync'ed, renamed, directory fsync'ed) before this returns.
  //
  // InvalidArgument, and nothing changes, when the patch is not valid JSON
  // (with line and column), is not an object, is larger than
  // kMaxPatchBytes, has a property name that is empty, longer than
  // kMaxNameBytes or contains '$', '.', '#', a space or a control character
  // (IoT Hub reserves them), nests deeper than kMaxDepth, has a string
  // longer than kMaxStringBytes, an integer outside [kMinInteger,
  // kMaxInteger], or would make the document larger than kMaxDocumentBytes;
  // also when device_id is empty or the identity is too long to name its
  // file. The message names the offending property. ResourceExhausted for
  // a twin beyond max_twins. Other codes are I/O errors (the memory state is
  // unchanged then too).
  absl::StatusOr<int64_t> PatchReported(absl::string_view device_id,
                                        absl::string_view module_id,
                                        absl::string_view patch_json);

 private:
  struct State;

  TwinStore(TwinStoreOptions options, int dir_fd, std::unique_ptr<State> state);

  const TwinStoreOptions options_;
  const int dir_fd_;  // -1 without a directory; holds the directory's lock
  // std::mutex rather than absl::Mutex: the system Abseil is not built with
  // ThreadSanitizer annotations, so TSan could not see its ordering.
  mutable std::mutex mu_;
  std::unique_ptr<State> state_;  // guarded by mu_
};

}  // namespace edgeroute::gateway::twins

#endif  // EDGEROUTE_GATEWAY_TWINS_TWIN_STORE_H_
