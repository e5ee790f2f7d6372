package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

func TestPeerText(t *testing.T) {
	long := strings.Repeat("é", MaxPeerText) // 2 bytes each
	for _, tt := range []struct{ in, want string }{
		{"503 Service Unavailable", "503 Service Unavailable"},
		{"503 \x1b]0;owned\x07\x1b[2J", "503 \uFFFD]0;owned\uFFFD\uFFFD[2J"},
		{"a\r\nb\tc\x00d\x7f\u0085e", "a\uFFFD\uFFFDb\uFFFDc\uFFFDd\uFFFD\uFFFDe"},
		{"line\u2028sep\u2029", "line\uFFFDsep\uFFFD"},
		{"bad \xff\xfe utf8", "bad \uFFFD\uFFFD utf8"},
		{strings.Repeat("x", MaxPeerText), strings.Repeat("x", MaxPeerText)},
		{strings.Repeat("x", MaxPeerText+10), strings.Repeat("x", MaxPeerText) + "…[10 bytes cut]"},
		{long, long[:MaxPeerText] + fmt.Sprintf("…[%d bytes cut]", len(long)-MaxPeerText)},
		{"x" + long, "x" + long[:MaxPeerText-2] + fmt.Sprintf("…[%d bytes cut]", len(long)-MaxPeerText+2)},
	} {
		got := PeerText(tt.in)
		if got != tt.want {
			t.Errorf("PeerText(%.40q) = %.80q, want %.80q", tt.in, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("PeerText(%.40q) is not UTF-8", tt.in)
		}
	}
}

// rawServer answers every connection with what respond writes, after
// reading the request's headers.
func rawServer(t *testing.T, respond func(w *bufio.Writer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				w := bufio.NewWriterSize(c, 32<<10)
				respond(w)
				_ = w.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// writeRepeat writes n bytes of c from a small buffer, so that the server
// side of a test allocates next to nothing.
func writeRepeat(w *bufio.Writer, c byte, n int) {
	chunk := []byte(strings.Repeat(string(c), 4096))
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		n -= k
	}
}

// checkBounded fails when any text of r is longer than its bound or holds
// a control character.
func checkBounded(t *testing.T, r Result) {
	t.Helper()
	if r.OK || r.Err == nil {
		t.Fatalf("Result %+v, want a failure", r)
	}
	marker := len("…[12345678 bytes cut]")
	texts := map[string]string{"Err": r.Err.Error(), "Problem": r.Problem(), "Target": r.Target}
	if se, ok := errors.AsType[*StatusError](r.Err); ok {
		texts["Status"], texts["Location"] = se.Status, se.Location
		if len(se.Status) > MaxPeerText+marker || len(se.Location) > MaxPeerText+marker {
			t.Errorf("StatusError carries %d bytes of status and %d of Location", len(se.Status), len(se.Location))
		}
	}
	for name, s := range texts {
		if len(s) > MaxErrText+marker {
			t.Errorf("%s is %d bytes long", name, len(s))
		}
		if strings.ContainsAny(s, "\x1b\x07\r\n\x00\u2028") {
			t.Errorf("%s has control characters: %.200q", name, s)
		}
	}
}

// TestHTTPHostileReasonPhrase: a reason phrase of 60 KB (under the header
// bound) and one of 5 MB (over it), with terminal escapes, leave at most
// MaxPeerText bytes in the Result, and the probe allocates a bounded amount.
func TestHTTPHostileReasonPhrase(t *testing.T) {
	for _, size := range []int{60 << 10, 5 << 20} {
		addr := rawServer(t, func(w *bufio.Writer) {
			w.WriteString("HTTP/1.1 503 \x1b]0;owned\x07\x1b[2J")
			writeRepeat(w, 'A', size)
			w.WriteString("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		})
		p := newHTTP(t, HTTPOptions{URL: "http://" + addr + "/health"})
		var r Result
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r = p.Probe(context.Background(), 5*time.Second)
		runtime.ReadMemStats(&after)
		checkBounded(t, r)
		if size < MaxHeaderRead && r.Class != ClassHTTPStatus {
			t.Errorf("%d bytes: class %q, want %q (%v)", size, r.Class, ClassHTTPStatus, r.Err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Errorf("a %d-byte reason phrase: the probe allocated %d bytes", size, alloc)
		}
		t.Logf("%d bytes: %s", size, r.Problem())
	}
}

// TestHTTPHostileMalformedAnswer: the text of a malformed status line,
// which net/http quotes in its error, is bounded too.
func TestHTTPHostileMalformedAnswer(t *testing.T) {
	addr := rawServer(t, func(w *bufio.Writer) {
		w.WriteString("HTTP/1.1\x1b[2J")
		writeRepeat(w, 'B', 40<<10)
		w.WriteString("\r\n\r\n")
	})
	r := newHTTP(t, HTTPOptions{URL: "http://" + addr + "/"}).Probe(context.Background(), 5*time.Second)
	checkBounded(t, r)
	if !strings.Contains(r.Err.Error(), "bytes cut]") {
		t.Errorf("Err %.200q, want the peer's text cut", r.Err)
	}
}

// TestHTTPRedactsQueryAndUserinfo: a probe URL's query values and userinfo
// appear in no text of any Result: refused, timed out, wrong status,
// redirect.
func TestHTTPRedactsQueryAndUserinfo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "http://login.example/?token=s3cret&next="+r.URL.Query().Get("token"), http.StatusFound)
		case "/hang":
			<-r.Context().Done()
		default:
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, tt := range []struct {
		name, host, path string
		wantClass        Class
	}{
		{"status", host, "/health", ClassHTTPStatus},
		{"redirect", host, "/redirect", ClassHTTPStatus},
		{"timeout", host, "/hang", ClassTimeout},
		{"refused", closed, "/health", ClassRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := "http://medic:pa55@" + tt.host + tt.path + "?token=s3cret&v=1"
			r := newHTTP(t, HTTPOptions{URL: u}).Probe(context.Background(), 300*time.Millisecond)
			wantTarget := "http://xxxxx@" + tt.host + tt.path + "?token=xxxxx&v=xxxxx"
			checkResult(t, r, wantTarget, false, tt.wantClass)
			checkBounded(t, r)
			texts := []string{r.Target, r.Err.Error(), r.Problem()}
			if se, ok := errors.AsType[*StatusError](r.Err); ok {
				texts = append(texts, se.URL, se.Location)
			}
			for _, s := range texts {
				if strings.Contains(s, "s3cret") || strings.Contains(s, "pa55") || strings.Contains(s, "medic:") {
					t.Errorf("a secret of the URL shows: %q", s)
				}
			}
			if tt.wantClass == ClassRefused && !errors.Is(r.Err, syscall.ECONNREFUSED) {
				t.Errorf("Err %v no longer unwraps to ECONNREFUSED", r.Err)
			}
		})
	}
}
