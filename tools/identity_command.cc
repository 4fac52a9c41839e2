// edgeroute identity: manages the identities file of gateway/auth.

#include <ostream>

#include "tools/commands.h"

namespace edgeroute::tools {

int IdentityCommand(const CommandContext& ctx) {
  *ctx.err << "edgeroute: identity: not available yet\n";
  return kExitUsage;
}

}  // namespace edgeroute::tools
