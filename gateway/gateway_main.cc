// A bare-bones launcher for RunGateway, used by the Python client test and
// for local experiments. The product command line is `edgeroute gateway`
// (tools/); this binary only maps --flag=value pairs onto GatewayOptions.
//
//   gateway_main --manifest=deployment.json [--device_id=edge-1]
//                [--tcp_port=7411] [--unix=PATH] [--metrics_port=-1]
//                [--store=DIR] [--io=auto|io_uring|epoll]
//                [--store_max_bytes=N] [--store_full=reject|drop_oldest]
//                [--durability=process|power]
//                [--ready_file=PATH]   (writes "<tcp_port> <metrics_port>")

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "gateway/gateway.h"

int main(int argc, char** argv) {
  edgeroute::gateway::GatewayOptions options;
  std::string ready_file;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (key == "--manifest") {
      options.manifest_path = value;
    } else if (key == "--device_id") {
      options.device_id = value;
    } else if (key == "--tcp_port") {
      ok = absl::SimpleAtoi(value, &options.tcp_port);
    } else if (key == "--unix") {
      options.unix_path = value;
    } else if (key == "--metrics_port") {
      ok = absl::SimpleAtoi(value, &options.metrics_port);
    } else if (key == "--store") {
      options.store_dir = value;
    } else if (key == "--store_max_bytes") {
      uint64_t bytes = 0;
      ok = absl::SimpleAtoi(value, &bytes);
      options.store_max_bytes = bytes;
    } else if (key == "--store_full") {
      ok = value == "reject" || value == "drop_oldest";
      options.store_full_policy =
          value == "drop_oldest" ? edgeroute::store::FullPolicy::kDropOldest
                                 : edgeroute::store::FullPolicy::kReject;
    } else if (key == "--durability") {
      ok = value == "process" || value == "power";
      options.store_durability = value == "power"
                                     ? edgeroute::store::Durability::kPower
                                     : edgeroute::store::Durability::kProcess;
    } else if (key == "--io") {
      if (value == "epoll") {
        options.backend = edgeroute::gateway::IoBackend::kEpoll;
      } else if (value == "io_uring") {
        options.backend = edgeroute::gateway::IoBackend::kIoUring;
      } else {
        ok = value == "auto";
      }
    } else if (key == "--ready_file") {
      ready_file = value;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad argument: %s\n", arg.c_str());
      return 2;
    }
  }
  if (!ready_file.empty()) {
    options.on_ready = [ready_file](int tcp_port, int metrics_port) {
      const std::string tmp = ready_file + ".tmp";
      std::ofstream(tmp) << tcp_port << " " << metrics_port << "\n";
      std::rename(tmp.c_str(), ready_file.c_str());
    };
  }
  const absl::Status status = edgeroute::gateway::RunGateway(options);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
