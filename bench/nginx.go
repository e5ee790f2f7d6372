package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// nginxBin is Debian's nginx.
const nginxBin = "/usr/sbin/nginx"

// nginx is an nginx master process with its config, pid, logs and temp
// paths in a directory of its own, proxying one loopback port to the
// backend.
type nginx struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:port/health
	done chan struct{}
}

const nginxConf = `daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		location / {
			proxy_pass http://%[3]s;
			proxy_connect_timeout 1s;
		}
	}
}
`

// startNginx starts nginx in the foreground with a config in dir/nginx and
// waits until it answers.
func startNginx(ctx context.Context, dir, backend string) (*nginx, error) {
	if _, err := os.Stat(nginxBin); err != nil {
		return nil, fmt.Errorf("nginx not installed: %w", err)
	}
	dir = filepath.Join(dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, backend)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	n := &nginx{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d/health", port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := n.get(http.DefaultClient); code == http.StatusOK {
			return n, nil
		}
		select {
		case <-n.done:
			return nil, fmt.Errorf("nginx exited: see %s/error.log", dir)
		default:
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("nginx did not answer 200 within 5s: see %s/error.log", dir)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			n.stop()
			return nil, err
		}
	}
}

// stop sends SIGQUIT (graceful shutdown) to nginx's master and waits.
func (n *nginx) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	}
}

// get requests the health URL through nginx and returns the status code.
func (n *nginx) get(c *http.Client) (int, error) {
	resp, err := c.Get(n.url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// clientCount is what a polling client saw during one outage.
type clientCount struct {
	Requests int         `json:"requests"`
	Status   map[int]int `json:"status"`
	Errors   int         `json:"errors"` // requests without a response
}

// poller is a client requesting through nginx every 10 ms.
type poller struct {
	n      *nginx
	c      *http.Client
	ending chan struct{}
	result chan clientCount
}

// pollPeriod is how often the client requests through nginx.
const pollPeriod = 10 * time.Millisecond

// poll starts a client that requests through nginx every 10 ms until end
// is called.
func (n *nginx) poll() *poller {
	p := &poller{
		n:      n,
		c:      &http.Client{Timeout: 2 * time.Second},
		ending: make(chan struct{}),
		result: make(chan clientCount, 1),
	}
	go p.loop()
	return p
}

func (p *poller) loop() {
	cc := clientCount{Status: map[int]int{}}
	tick := time.NewTicker(pollPeriod)
	defer tick.Stop()
	var endBy time.Time
	ending := p.ending
	for {
		code, err := p.n.get(p.c)
		cc.Requests++
		if err != nil {
			cc.Errors++
		} else {
			cc.Status[code]++
		}
		if !endBy.IsZero() && (code == http.StatusOK || time.Now().After(endBy)) {
			p.result <- cc
			return
		}
		select {
		case <-ending:
			ending = nil
			endBy = time.Now().Add(2 * time.Second)
		default:
		}
		<-tick.C
	}
}

// end stops the client once it got a 200 again (at most 2 s later) and
// returns what it saw.
func (p *poller) end() clientCount {
	close(p.ending)
	return <-p.result
}
