// edgeroute store inspect DIR: a report of a store-and-forward directory.

#include <iostream>
#include <string>

#include "store/store.h"
#include "tools/commands.h"

namespace edgeroute::tools {

int StoreCommand(const CommandContext& ctx) {
  if (ctx.args.size() != 2 || ctx.args[0] != "inspect") {
    *ctx.err << "usage: edgeroute store inspect DIR\n";
    return kExitUsage;
  }
  absl::StatusOr<std::string> report = store::InspectStore(ctx.args[1]);
  if (!report.ok()) {
    *ctx.err << "edgeroute store inspect: " << report.status().message()
             << "\n";
    return kExitInvalid;
  }
  *ctx.out << *report;
  if (!report->empty() && report->back() != '\n') *ctx.out << "\n";
  return kExitOk;
}

}  // namespace edgeroute::tools
