// The edgeroute command line as a library, so that it can be tested without
// spawning processes. edgeroute_main.cc is a two-line wrapper around it.
//
//   edgeroute eval --tsv|--jsonl [--device NAME]     batch condition checks
//   edgeroute eval 'CONDITION' [--message FILE]      one condition, explained
//   edgeroute route --tsv|--jsonl [--device NAME]    batch route parsing
//   edgeroute route 'ROUTE' [--device NAME]          one route, explained
//   edgeroute check MANIFEST.json [--device NAME]    validate a manifest
//   edgeroute store inspect DIR                      report a store directory
//   edgeroute run --manifest M.json [...]            run the gateway
//   edgeroute demo [...]                             the gateway demo
//   edgeroute identity add|token|connection-string|list|remove [...]
//                                                    the identities file
//   edgeroute help | --help
//
// `edgeroute help` prints the details. Exit codes: 0 success, 1 the input
// is invalid (check, one-shot eval/route), 2 usage errors.

#ifndef EDGEROUTE_TOOLS_CLI_H_
#define EDGEROUTE_TOOLS_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace edgeroute::tools {

// Runs the command line `args` (argv without the program name). Batch
// commands read lines from `in`; results go to `out`, usage problems to
// `err`. Returns the process exit code.
// Thread-safety: none needed; no global state.
int RunEdgeroute(const std::vector<std::string>& args, std::istream& in,
                 std::ostream& out, std::ostream& err);

}  // namespace edgeroute::tools

#endif  // EDGEROUTE_TOOLS_CLI_H_
