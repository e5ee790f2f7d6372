package nginx

// EndpointAddr returns the address of the upstream a probe connects to, as
// ParseErrorLine fills UpstreamError.Addr, so that the two compare equal:
// for network "unix", "unix:" and the socket path; for "tcp", the host:port
// as NormalizeAddr gives it ("127.0.0.1:8080", "[::1]:8080"). It returns ""
// for any other network, an empty address, and a host:port NormalizeAddr
// does not take. network and address are what probe.Spec.Endpoint returns.
func EndpointAddr(network, address string) string {
	if address == "" {
		return ""
	}
	switch network {
	case "unix":
		return "unix:" + address
	case "tcp":
		addr, _ := NormalizeAddr(address)
		return addr
	}
	return ""
}
