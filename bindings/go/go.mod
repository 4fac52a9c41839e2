module edgeroute

go 1.19
