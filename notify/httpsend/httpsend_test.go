package httpsend_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/httpsend"
)

// answer is what the test server answers.
type answer struct {
	status int
	header http.Header
	body   string
}

// server answers every request with a; requests returns what it got, one
// "method X-Test body" line per request.
func server(t *testing.T, a answer) (s *httptest.Server, requests func() []string) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []string
	)
	s = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.Header.Get("X-Test")+" "+string(b))
		mu.Unlock()
		for k, v := range a.header {
			w.Header()[k] = v
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(s.Close)
	return s, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestSend(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		answer    answer
		wantRetry bool
		wantErr   string // after "post test <url>: "; "" for success
		wantAfter time.Duration
	}{
		{name: "200", answer: answer{status: 200, body: "ok"}},
		{name: "204", answer: answer{status: 204}},
		{name: "400", answer: answer{status: 400, body: "bad\r\nrequest"}, wantErr: "400 Bad Request: bad request"},
		{name: "401", answer: answer{status: 401}, wantErr: "401 Unauthorized"},
		{name: "404", answer: answer{status: 404, body: "no"}, wantErr: "404 Not Found: no"},
		{name: "302", answer: answer{status: 302, header: http.Header{"Location": {"/elsewhere"}}},
			wantErr: "302 Found (redirects are not followed)"},
		{name: "408", answer: answer{status: 408}, wantRetry: true, wantErr: "408 Request Timeout"},
		{name: "429", answer: answer{status: 429}, wantRetry: true, wantErr: "429 Too Many Requests"},
		{name: "500", answer: answer{status: 500, body: "boom"}, wantRetry: true, wantErr: "500 Internal Server Error: boom"},
		{name: "599", answer: answer{status: 599}, wantRetry: true, wantErr: "599 "},
		{name: "503 Retry-After seconds", answer: answer{status: 503, header: http.Header{"Retry-After": {"120"}}},
			wantRetry: true, wantErr: "503 Service Unavailable (retry after 2m0s)", wantAfter: 2 * time.Minute},
		{name: "429 Retry-After date", answer: answer{status: 429, header: http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}, "Date": {now.Format(http.TimeFormat)}}},
			wantRetry: true, wantErr: "429 Too Many Requests (retry after 30s)", wantAfter: 30 * time.Second},
		{name: "429 Retry-After a year", answer: answer{status: 429, header: http.Header{"Retry-After": {"31536000"}}},
			wantRetry: true, wantErr: "429 Too Many Requests (retry after 1h0m0s)", wantAfter: notify.MaxRetryAfter},
		{name: "429 Retry-After overflows", answer: answer{status: 429, header: http.Header{"Retry-After": {"99999999999999999999999"}}},
			wantRetry: true, wantErr: "429 Too Many Requests (retry after 1h0m0s)", wantAfter: notify.MaxRetryAfter},
		{name: "429 Retry-After 0", answer: answer{status: 429, header: http.Header{"Retry-After": {"0"}}},
			wantRetry: true, wantErr: "429 Too Many Requests"},
		{name: "429 Retry-After invalid", answer: answer{status: 429, header: http.Header{"Retry-After": {"later"}}},
			wantRetry: true, wantErr: "429 Too Many Requests"},
		{name: "400 ignores Retry-After", answer: answer{status: 400, header: http.Header{"Retry-After": {"7"}}},
			wantErr: "400 Bad Request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, got := server(t, tt.answer)
			retry, err := httpsend.Send(context.Background(), httpsend.NoRedirects(nil), httpsend.Request{
				Op:     "post test",
				URL:    s.URL + "/hook",
				Header: http.Header{"X-Test": {"yes"}},
				Body:   []byte("hello"),
				Now:    func() time.Time { return now },
			})
			if retry != tt.wantRetry {
				t.Errorf("retry = %v, want %v (err %v)", retry, tt.wantRetry, err)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
			} else {
				want := "post test " + s.URL + "/hook: " + tt.wantErr
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("err = %v\nwant %s", err, want)
				}
				var se *httpsend.StatusError
				if !errors.As(err, &se) || se.StatusCode != tt.answer.status {
					t.Errorf("err %#v is not a *StatusError with code %d", err, tt.answer.status)
				}
			}
			if got := notify.RetryAfter(err); got != tt.wantAfter {
				t.Errorf("RetryAfter = %s, want %s", got, tt.wantAfter)
			}
			if got := got(); len(got) != 1 || got[0] != "POST yes hello" {
				t.Errorf("server got %q, want one POST with the header and body", got)
			}
		})
	}
}

// TestExcerptBounded: the error holds at most ExcerptMax bytes of the body,
// on one line, however long the body is; the connection is reused after a
// body of moderate length.
func TestExcerptBounded(t *testing.T) {
	body := "upstream\r\nis down " + strings.Repeat("é", 10000)
	s, _ := server(t, answer{status: 503, body: body})
	_, err := httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{Op: "post test", URL: s.URL})
	var se *httpsend.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *StatusError", err)
	}
	if len(se.Body) > httpsend.ExcerptMax || !strings.HasPrefix(se.Body, "upstream is down é") || strings.ContainsAny(se.Body, "\r\n\uFFFD") {
		t.Errorf("Body = %q (%d bytes), want the start of the body on one line, at most %d bytes", se.Body, len(se.Body), httpsend.ExcerptMax)
	}

	// A custom excerpt is cut too, at a rune boundary.
	_, err = httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{Op: "post test", URL: s.URL,
		Excerpt: func([]byte) string { return strings.Repeat("é", 1000) }})
	if !errors.As(err, &se) || len(se.Body) != httpsend.ExcerptMax || !strings.HasSuffix(se.Body, "é") {
		t.Errorf("custom excerpt = %q (%d bytes), want %d bytes of whole runes", se.Body, len(se.Body), httpsend.ExcerptMax)
	}
}

// TestSecretsNeverInErrors: the URL's user information and query values
// stay out of every error: answers, refused connections, timeouts, and
// requests that cannot be made.
func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "s3cret"
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("err = nil, want an error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	s, _ := server(t, answer{status: 500, body: "oops"})
	withSecrets := strings.Replace(s.URL, "http://", "http://medic:"+secret+"@", 1) + "/hook?token=" + secret
	_, err := httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{Op: "post test", URL: withSecrets})
	check(t, err)
	if want := "post test " + strings.Replace(s.URL, "http://", "http://xxxxx@", 1) + "/hook?token=xxxxx: 500"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start with %s", err, want)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://medic:" + secret + "@" + ln.Addr().String() + "/?token=" + secret
	ln.Close()
	retry, err := httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{Op: "post test", URL: down})
	check(t, err)
	if !retry || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("refused: retry = %v, err = %v; want a retry and connection refused", retry, err)
	}

	retry, err = httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{Op: "post test", Method: "BAD METHOD", URL: withSecrets})
	check(t, err)
	if retry {
		t.Errorf("a request that cannot be made: retry = true, want false (%v)", err)
	}
}

// TestTimeout: an endpoint that does not answer within Timeout is a
// retryable error that says so; a server's hang never outlasts it.
func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(block) })
	retry, err := httpsend.Send(context.Background(), http.DefaultClient, httpsend.Request{
		Op: "post test", URL: s.URL + "/?token=s3cret", Timeout: 100 * time.Millisecond})
	if !retry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, %v; want a retry and a deadline error", retry, err)
	}
	if want := "post test " + s.URL + "/?token=xxxxx: attempt timed out after 100ms: context deadline exceeded"; err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestNoRedirects: a client from NoRedirects returns the 3xx answer, and
// keeps the given client's other settings.
func TestNoRedirects(t *testing.T) {
	var followed atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(s.Close)
	c := httpsend.NoRedirects(&http.Client{Timeout: time.Minute})
	if c.Timeout != time.Minute {
		t.Errorf("Timeout = %s, want the given client's", c.Timeout)
	}
	retry, err := httpsend.Send(context.Background(), c, httpsend.Request{Op: "post test", URL: s.URL})
	var se *httpsend.StatusError
	if retry || !errors.As(err, &se) || se.StatusCode != http.StatusTemporaryRedirect || followed.Load() {
		t.Errorf("Send = %v, %v (followed %v); want the 307 answer, not retried", retry, err, followed.Load())
	}
}

// TestNoRedirectsNewConnectionPerRequest: the default client opens a new
// connection for every request, so a receiver that restarted between two
// sends is never reached over a dead kept-alive connection.
func TestNoRedirectsNewConnectionPerRequest(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := httpsend.NoRedirects(nil)
	for range 3 {
		resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("3 requests over %d connections, want one each", n)
	}
}
