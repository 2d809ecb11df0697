package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is what one request did: its HTTP status (0 for a transport
// error) and, for the caller's bookkeeping, nothing else.
type outcome struct {
	status int
	err    error
}

// step sends one request for worker w (0 ≤ w < c); it is called by one
// goroutine per worker, so per-worker state needs no lock.
type step func(ctx context.Context, w int) outcome

// run is the result of driving one path at one concurrency.
type run struct {
	requests int
	ok       int
	elapsed  time.Duration
	latency  []time.Duration // sorted
	statuses map[string]int  // failures by status ("err" for transport errors)
}

func (r *run) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// quantile returns the q-quantile (0 ≤ q ≤ 1) of sorted latencies by the
// nearest-rank method; 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// errorsText renders failures by status, most frequent first: "401×3 err×1".
func errorsText(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "×" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, " ")
}

// drive runs c workers, each sending requests back to back (a closed loop),
// until d has passed or maxRequests have been started, whichever is first.
// success says which statuses count as answered correctly.
func drive(ctx context.Context, c int, d time.Duration, maxRequests int, success func(int) bool, do step) *run {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second) // a hung server cannot hang the bench
	defer cancel()
	var (
		started  atomic.Int64
		mu       sync.Mutex
		wg       sync.WaitGroup
		out      = &run{statuses: map[string]int{}}
		deadline = time.Now().Add(d)
	)
	begin := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			fails := map[string]int{}
			ok := 0
			for time.Now().Before(deadline) && started.Add(1) <= int64(maxRequests) && ctx.Err() == nil {
				t0 := time.Now()
				o := do(ctx, w)
				lat = append(lat, time.Since(t0))
				switch {
				case o.err != nil:
					fails["err"]++
				case success(o.status):
					ok++
				default:
					fails[strconv.Itoa(o.status)]++
				}
			}
			mu.Lock()
			out.latency = append(out.latency, lat...)
			out.ok += ok
			for k, v := range fails {
				out.statuses[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(begin)
	out.requests = len(out.latency)
	slices.Sort(out.latency)
	return out
}

// client is one HTTP client for every worker: keep-alive connections, as
// many as there are workers.
func newClient(c int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        c * 2,
			MaxIdleConnsPerHost: c * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// send performs req and returns its status and (when want is true) body.
func send(client *http.Client, req *http.Request, want bool) (int, []byte, error) {
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	if want {
		body, err := io.ReadAll(res.Body)
		return res.StatusCode, body, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil, err
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
}
