// The edgeroute command line; see tools/cli.h and `edgeroute help`.

#include <iostream>
#include <string>
#include <vector>

#include "tools/cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  return edgeroute::tools::RunEdgeroute(args, std::cin, std::cout, std::cerr);
}
