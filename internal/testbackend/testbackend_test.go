package testbackend

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

func TestServeAnswersHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln) }()

	for _, tc := range []struct{ path, wantBody string }{
		{"/health", "ok"},
		{"/", "medic-test-backend"},
	} {
		resp, err := http.Get("http://" + ln.Addr().String() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tc.wantBody {
			t.Errorf("GET %s = %d %q, want 200 %q", tc.path, resp.StatusCode, body, tc.wantBody)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(context.Background(), ln.Addr().String()); err == nil {
		t.Fatal("Serve on a busy port = nil, want an error")
	}
}
