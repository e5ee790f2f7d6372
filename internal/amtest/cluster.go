package amtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Gossip timings of StartCluster, much shorter than Alertmanager's defaults
// so that a test runs in seconds. They are fine on loopback only.
const (
	// PeerTimeout is --cluster.peer-timeout: the peer at position i of the
	// cluster (peers sorted by name) waits i×PeerTimeout before it sends a
	// notification, and sends nothing when the notification log, gossiped
	// from the peer before it, shows the notification went out already.
	// That wait is the cluster's deduplication.
	PeerTimeout = 2 * time.Second
	// GossipInterval is --cluster.gossip-interval. Alertmanager polls for
	// the cluster to settle every 10×GossipInterval and takes it as
	// settled after 3 polls without a change in the member count.
	GossipInterval = 50 * time.Millisecond
	// PushPullInterval is --cluster.pushpull-interval, how often peers
	// exchange their whole state.
	PushPullInterval = time.Second
)

// Cluster is a highly available Alertmanager cluster: peers that gossip
// their silences and notification log on loopback, all with the
// configuration of Start and the same webhook receiver.
type Cluster struct {
	// Peers are the Alertmanagers, in the order they were started.
	Peers []*Server
	recv  *Receiver
}

// StartCluster runs n Alertmanagers as one cluster and stops them in
// t.Cleanup. Each has its own storage under t.TempDir(), its API on a free
// loopback port, its gossip on another (--cluster.listen-address), and
// every other peer as a --cluster.peer. It returns once every peer's GET
// /api/v2/status says the cluster is ready (gossip settled) with n
// members. It skips the test when no Alertmanager is installed (fails with
// MEDIC_REQUIRE_SYSTEMD=1), and fails it when the cluster does not form
// within 30s.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartCluster(%d): want at least one peer", n)
	}
	bin := binaryOrSkip(t)
	c := &Cluster{recv: NewReceiver(t)}

	// Ports are picked by binding :0 and closing, so another process may
	// take one first: try a few times, with new ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if lastErr = c.start(t, bin, n); lastErr == nil {
			break
		}
		t.Logf("start alertmanager cluster (attempt %d): %v", attempt+1, lastErr)
		for _, p := range c.Peers {
			p.stop()
		}
		c.Peers = nil
	}
	if lastErr != nil {
		t.Fatalf("start alertmanager cluster: %v", lastErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx, n); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *Cluster) start(t testing.TB, bin string, n int) error {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		port, err := freeGossipPort()
		if err != nil {
			return err
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	for i, addr := range addrs {
		args := []string{
			"--cluster.listen-address=" + addr,
			"--cluster.advertise-address=" + addr,
			"--cluster.peer-timeout=" + PeerTimeout.String(),
			"--cluster.gossip-interval=" + GossipInterval.String(),
			"--cluster.pushpull-interval=" + PushPullInterval.String(),
			"--cluster.reconnect-interval=1s",
			"--cluster.settle-timeout=20s",
		}
		for j, peer := range addrs {
			if j != i {
				args = append(args, "--cluster.peer="+peer)
			}
		}
		s := &Server{dir: t.TempDir(), recv: c.recv, clusterAddr: addr}
		if err := s.start(t, bin, args); err != nil {
			return fmt.Errorf("peer %d: %w", i+1, err)
		}
		c.Peers = append(c.Peers, s)
	}
	return nil
}

// WaitReady waits until every peer that is still running says the cluster
// is ready with n members (GET /api/v2/status), e.g. after a peer was
// killed and the others noticed (n one less). It returns an error naming
// each peer's last status when ctx ends first.
func (c *Cluster) WaitReady(ctx context.Context, n int) error {
	for {
		var bad []string
		for _, p := range c.Peers {
			if !p.Running() {
				continue
			}
			st, err := p.Status(ctx)
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", p.URL(), err))
			case st.Cluster.Status != "ready" || len(st.Cluster.Peers) != n:
				bad = append(bad, fmt.Sprintf("%s: cluster %s with %d members", p.URL(), st.Cluster.Status, len(st.Cluster.Peers)))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("alertmanager cluster not ready with %d members: %w: %s", n, context.Cause(ctx), strings.Join(bad, "; "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// URLs returns the base URLs of the peers, the form medic's alertmanager
// notifier takes.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Peers))
	for i, p := range c.Peers {
		urls[i] = p.URL()
	}
	return urls
}

// Receiver returns the webhook receiver every peer notifies.
func (c *Cluster) Receiver() *Receiver { return c.recv }

// Sender returns the peer that sent n, or nil.
func (c *Cluster) Sender(n Notification) *Server {
	for _, p := range c.Peers {
		if p.Sent(n) {
			return p
		}
	}
	return nil
}

// Running reports whether the Alertmanager process is still running.
func (s *Server) Running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Status is what GET /api/v2/status returns (alertmanagerStatus of the
// API v2 OpenAPI specification), in part.
type Status struct {
	Cluster struct {
		// Name is this peer's name in the cluster.
		Name string `json:"name"`
		// Status is "ready" once gossip has settled, "settling" before,
		// and "disabled" without clustering.
		Status string `json:"status"`
		// Peers are the members of the cluster this peer knows of, itself
		// included.
		Peers []struct {
			Name    string `json:"name"`
			Address string `json:"address"`
		} `json:"peers"`
	} `json:"cluster"`
	Uptime time.Time `json:"uptime"`
}

// Status returns the Alertmanager's GET /api/v2/status.
func (s *Server) Status(ctx context.Context) (Status, error) {
	var st Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/api/v2/status", nil)
	if err != nil {
		return st, fmt.Errorf("get status: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("get status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, fmt.Errorf("read status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("get status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("decode status: %w", err)
	}
	return st, nil
}

// freeGossipPort returns a loopback port free for both TCP and UDP:
// memberlist listens on both.
func freeGossipPort() (int, error) {
	for range 10 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("find a port free for TCP and UDP: none in 10 tries")
}
