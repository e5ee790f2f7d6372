package nginx

import "testing"

func TestEndpointAddr(t *testing.T) {
	for _, tt := range []struct{ network, address, want string }{
		{"tcp", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"tcp", "[::ffff:127.0.0.1]:8080", "127.0.0.1:8080"},
		{"tcp", "[::1]:80", "[::1]:80"},
		{"tcp", "Backend.Example:8080", "backend.example:8080"},
		{"tcp", "backend", ""},
		{"tcp", "", ""},
		{"unix", "/run/app.sock", "unix:/run/app.sock"},
		{"unix", "", ""},
		{"udp", "127.0.0.1:53", ""},
	} {
		if got := EndpointAddr(tt.network, tt.address); got != tt.want {
			t.Errorf("EndpointAddr(%q, %q) = %q, want %q", tt.network, tt.address, got, tt.want)
		}
	}
}
