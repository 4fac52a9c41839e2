// edgeroute store inspect DIR: a report of a store-and-forward directory.
// edgeroute store repair DIR: quarantine what is unreadable (store.h,
// RepairStore) so that the store opens and every queue moves on.

#include <iostream>
#include <string>

#include "store/store.h"
#include "tools/commands.h"

namespace edgeroute::tools {

int StoreCommand(const CommandContext& ctx) {
  if (ctx.args.size() != 2 ||
      (ctx.args[0] != "inspect" && ctx.args[0] != "repair")) {
    *ctx.err << "usage: edgeroute store inspect|repair DIR\n";
    return kExitUsage;
  }
  const std::string& verb = ctx.args[0];
  absl::StatusOr<std::string> report = verb == "inspect"
                                           ? store::InspectStore(ctx.args[1])
                                           : store::RepairStore(ctx.args[1]);
  if (!report.ok()) {
    *ctx.err << "edgeroute store " << verb << ": " << report.status().message()
             << "\n";
    return kExitInvalid;
  }
  *ctx.out << *report;
  if (!report->empty() && report->back() != '\n') *ctx.out << "\n";
  return kExitOk;
}

}  // namespace edgeroute::tools
