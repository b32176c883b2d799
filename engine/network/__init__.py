"""Container networking: the network service, IPAM, the nftables firewall, network namespaces and the embedded DNS server."""
