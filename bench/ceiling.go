package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// argon2Ceiling hashes with the binary's default argon2id parameters on
// every core for d and returns hashes per second: no sign-in or sign-up can
// go faster on this machine, since each computes one hash. It runs as many
// hashes at once as the binary does by default (password.DefaultConcurrency,
// one per core).
func argon2Ceiling(d time.Duration) (float64, error) {
	n := password.DefaultConcurrency()
	h, err := password.NewHasher(password.DefaultParams, n, time.Minute)
	if err != nil {
		return 0, err
	}
	var (
		count    atomic.Int64
		wg       sync.WaitGroup
		deadline = time.Now().Add(d)
		begin    = time.Now()
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := h.Hash(context.Background(), "correct horse battery staple"); err == nil {
					count.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / time.Since(begin).Seconds(), nil
}

// serveEcho is the bench binary re-executed as the bare Echo ceiling: one
// JSON route and nothing else (no middleware, no validation, no database).
func serveEcho(addr string) error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/ping", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	srv := &http.Server{Addr: addr, Handler: e, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// process is a child process the bench started and must stop.
type process struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	done chan error
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to finish (SIGTERM) and kills it after 20 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// start runs cmd and waits until GET base+probe answers 200.
func start(cmd *exec.Cmd, base, probe string) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, base: base, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("%s exited before answering: %v", cmd.Path, err)
		default:
		}
		if res, err := client.Get(base + probe); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, errors.New("the server did not become ready within 60 s")
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
