// Command bench is Latchkey's load benchmark (`make bench`; see
// bench/README.md).
//
// It builds and starts the real binary on loopback (SQLite, and PostgreSQL
// when LATCHKEY_TEST_POSTGRES_URL is set, in a database of its own that it
// drops afterwards), seeds accounts in bulk through the store, drives
// sign-up, sign-in, refresh, GET /me and avatar upload at each concurrency,
// measures the machine's ceilings in the same run (argon2id on every core,
// a bare Echo JSON handler), and prints one table. Every phase is bounded
// in time and in requests; the run stops by itself.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/store"
)

// The password of every seeded account and every sign-up.
const benchPassword = "load-bench: Tr0ub4dor & 3 horses"

type options struct {
	mode        string
	conc        []int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int
	accounts    int
	databases   []string
	paths       []string
	profileDir  string
	keep        bool
	bin         string
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-echo" {
		if err := serveEcho(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench echo:", err)
			os.Exit(1)
		}
		return
	}
	if err := runBench(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseOptions() (*options, error) {
	var (
		o                          options
		conc, dbs, paths, duration string
		warmup                     string
	)
	flag.StringVar(&o.mode, "mode", "quick", "quick (default, about 2 minutes) or long (longer phases, 100k accounts)")
	flag.StringVar(&conc, "c", "8,32", "concurrent clients, comma-separated")
	flag.StringVar(&duration, "d", "", "measured duration of each phase (default: 3s quick, 15s long)")
	flag.StringVar(&warmup, "warmup", "", "unmeasured warm-up before each phase (default: 500ms quick, 2s long)")
	flag.IntVar(&o.maxRequests, "n", 0, "at most this many requests per phase (default: 50000 quick, 500000 long)")
	flag.IntVar(&o.accounts, "accounts", 0, "accounts seeded through the store (default: 1000 quick, 100000 long)")
	flag.StringVar(&dbs, "db", "", "databases: sqlite,postgres (default: sqlite, plus postgres when LATCHKEY_TEST_POSTGRES_URL is set)")
	flag.StringVar(&paths, "paths", "signup,signin,refresh,me,avatar", "paths to drive")
	flag.StringVar(&o.profileDir, "profile", "", "write a CPU profile of the server per phase into this directory (pprof over LATCHKEY_DEBUG_ADDR)")
	flag.StringVar(&o.bin, "bin", "", "run this latchkey binary instead of building ./cmd/latchkey (to compare builds)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (server logs, SQLite files)")
	flag.Parse()

	long := o.mode == "long"
	if o.mode != "quick" && !long {
		return nil, fmt.Errorf("-mode %q: want quick or long", o.mode)
	}
	pick := func(quick, long_ time.Duration, v string) (time.Duration, error) {
		if v != "" {
			return time.ParseDuration(v)
		}
		if long {
			return long_, nil
		}
		return quick, nil
	}
	var err error
	if o.duration, err = pick(3*time.Second, 15*time.Second, duration); err != nil {
		return nil, err
	}
	if o.warmup, err = pick(500*time.Millisecond, 2*time.Second, warmup); err != nil {
		return nil, err
	}
	if o.duration > 60*time.Second {
		return nil, errors.New("-d: at most 60s per phase")
	}
	if o.maxRequests <= 0 {
		o.maxRequests = 50_000
		if long {
			o.maxRequests = 500_000
		}
	}
	if o.accounts <= 0 {
		o.accounts = 1000
		if long {
			o.accounts = 100_000
		}
	}
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-c %q: want numbers from 1 to 1024", conc)
		}
		o.conc = append(o.conc, n)
	}
	if dbs == "" {
		dbs = "sqlite"
		if os.Getenv("LATCHKEY_TEST_POSTGRES_URL") != "" {
			dbs += ",postgres"
		}
	}
	o.databases = strings.Split(dbs, ",")
	o.paths = strings.Split(paths, ",")
	return &o, nil
}

// row is one line of the table.
type row struct {
	db, path string
	c        int
	r        *run
	cpu      time.Duration // server CPU per request
	peakKiB  int64
	conns    string
	ratio    string
}

func runBench() error {
	o, err := parseOptions()
	if err != nil {
		return err
	}
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "latchkey-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "bench: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	began := time.Now()
	fmt.Fprintf(os.Stderr, "bench: %s mode, %v per phase, c=%v, %d accounts, databases %v\n", o.mode, o.duration, o.conc, o.accounts, o.databases)

	bin := o.bin
	if bin == "" {
		bin = filepath.Join(tmp, "latchkey")
		fmt.Fprintln(os.Stderr, "bench: building the binary")
		build := exec.Command(goTool(), "build", "-trimpath", "-o", bin, "./cmd/latchkey")
		build.Dir, build.Stdout, build.Stderr = repoRoot(), os.Stderr, os.Stderr
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := build.Run(); err != nil {
			return fmt.Errorf("building latchkey: %w", err)
		}
	}

	fmt.Fprintln(os.Stderr, "bench: measuring the ceilings")
	hashRate, err := argon2Ceiling(o.duration)
	if err != nil {
		return err
	}
	echoRuns, echoCPU, err := echoCeiling(ctx, o)
	if err != nil {
		return err
	}

	var rows []row
	idle := map[string][2]int64{}
	for _, db := range o.databases {
		rs, mem, err := benchDatabase(ctx, o, strings.TrimSpace(db), bin, tmp, hashRate, echoRuns)
		if err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
		rows = append(rows, rs...)
		idle[db] = mem
	}

	// The table.
	fmt.Printf("\nLatchkey load benchmark — %s mode, %v per phase (+%v warm-up), %d seeded accounts\n", o.mode, o.duration, o.warmup, o.accounts)
	fmt.Printf("machine: %s, %d CPUs, %s; load average %s\n", cpuModel(), runtime.NumCPU(), runtime.Version(), loadAvg())
	fmt.Printf("ceilings: argon2id (m=%d KiB, t=%d, p=%d) on %d cores = %.1f hashes/s;", password.DefaultParams.Memory, password.DefaultParams.Time, password.DefaultParams.Threads, runtime.NumCPU(), hashRate)
	for i, c := range o.conc {
		fmt.Printf(" bare Echo JSON c=%d = %.0f req/s (p99 %s ms, %.0f µs CPU/req);", c, echoRuns[i].rate(), ms(quantile(echoRuns[i].latency, .99)), float64(echoCPU[i].Microseconds()))
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "db\tpath\tc\trequests\treq/s\tp50 ms\tp99 ms\tmax ms\terrors\tCPU µs/req\tpeak RSS MiB\tconns opened\tof ceiling\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t\n",
			r.db, r.path, r.c, r.r.requests, r.r.rate(), ms(quantile(r.r.latency, .5)), ms(quantile(r.r.latency, .99)),
			ms(quantile(r.r.latency, 1)), errorsText(r.r.statuses), float64(r.cpu.Microseconds()), mib(r.peakKiB), r.conns, r.ratio)
	}
	tw.Flush()
	for _, db := range o.databases {
		m := idle[db]
		fmt.Printf("%s: RSS idle 2 s after start-up %s MiB, 2 s after the load %s MiB\n", db, mib(m[0]), mib(m[1]))
	}
	fmt.Printf("errors: failed answers by status (err = transport error). of ceiling: sign-up/sign-in vs argon2id (mean of a measure just before the phase and one just after), the rest vs bare Echo at the same c.\n")
	fmt.Printf("total time %v\n", time.Since(began).Round(time.Second))
	return nil
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// repoRoot is the module root (where go.mod is), found from the working
// directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// echoCeiling drives the bare Echo handler at each concurrency.
func echoCeiling(ctx context.Context, o *options) ([]*run, []time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	p, err := start(exec.Command(self, "-serve-echo", addr), "http://"+addr, "/ping")
	if err != nil {
		return nil, nil, err
	}
	defer p.stop()
	var runs []*run
	var cpus []time.Duration
	for _, c := range o.conc {
		client := newClient(c)
		do := func(ctx context.Context, _ int) outcome {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/ping", nil)
			st, _, err := send(client, req, false)
			return outcome{st, err}
		}
		drive(ctx, c, o.warmup, o.maxRequests, is(200), do)
		cpu0, _ := procCPU(p.pid())
		r := drive(ctx, c, o.duration, o.maxRequests, is(200), do)
		cpu1, _ := procCPU(p.pid())
		runs = append(runs, r)
		cpus = append(cpus, perRequest(cpu1-cpu0, r.requests))
		client.CloseIdleConnections()
	}
	return runs, cpus, nil
}

func is(statuses ...int) func(int) bool {
	return func(s int) bool {
		for _, want := range statuses {
			if s == want {
				return true
			}
		}
		return false
	}
}

func perRequest(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// database is one database the binary runs on during the bench.
type database struct {
	dsn      string
	teardown func()
	pgName   string    // the bench's own PostgreSQL database
	monitor  *pgx.Conn // on PostgreSQL: reads pg_stat_database
}

func openDatabase(ctx context.Context, kind, tmp string) (*database, error) {
	switch kind {
	case "sqlite":
		dir := filepath.Join(tmp, "sqlite")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		return &database{dsn: "sqlite:" + filepath.Join(dir, "latchkey.db"), teardown: func() {}}, nil
	case "postgres":
		base := os.Getenv("LATCHKEY_TEST_POSTGRES_URL")
		if base == "" {
			return nil, errors.New("LATCHKEY_TEST_POSTGRES_URL is not set")
		}
		u, err := url.Parse(base)
		if err != nil {
			return nil, errors.New("LATCHKEY_TEST_POSTGRES_URL is not a URL")
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
			return nil, errors.New("the bench runs against a loopback PostgreSQL only")
		}
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return nil, err
		}
		name := "latchkey_bench_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("creating database %s: %w", name, err)
		}
		u.Path = "/" + name
		db := &database{dsn: u.String(), pgName: name, monitor: conn}
		db.teardown = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Every connection to this database is the bench's own (its
			// server has stopped by now); FORCE only ends stragglers.
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "bench: dropping database %s: %v\n", name, err)
			}
			conn.Close(ctx)
		}
		return db, nil
	}
	return nil, fmt.Errorf("unknown database %q (want sqlite or postgres)", kind)
}

// pgSessions is pg_stat_database.sessions of the bench's database: the
// connections PostgreSQL accepted so far (its statistics may lag by about
// a second).
func (db *database) pgSessions(ctx context.Context) int64 {
	if db.monitor == nil {
		return -1
	}
	var n int64
	_, _ = db.monitor.Exec(ctx, "SELECT pg_stat_clear_snapshot()")
	if err := db.monitor.QueryRow(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = $1", db.pgName).Scan(&n); err != nil {
		return -1
	}
	return n
}

// seed migrates the database and inserts n password accounts through the
// store, in bulk, all with one precomputed argon2id hash of benchPassword
// (a sign-in verifies it at full cost all the same).
func seed(ctx context.Context, dsn string, n int) error {
	db, err := store.Open(ctx, dsn, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	h, err := password.NewHasher(password.DefaultParams, 1, time.Minute)
	if err != nil {
		return err
	}
	hash, err := h.Hash(ctx, benchPassword)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	const chunk = 5000
	batch := make([]auth.User, 0, chunk)
	for i := range n {
		email := seedEmail(i)
		batch = append(batch, auth.User{
			ID: uuid.NewString(), AccountType: auth.AccountPassword, Name: "Seed " + strconv.Itoa(i),
			Email: &email, EmailConfirmed: true, Locale: "en", Timezone: "UTC",
			PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
		})
		if len(batch) == chunk || i == n-1 {
			if err := db.CreateUsers(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// vacuum runs VACUUM (ANALYZE) on the PostgreSQL database at dsn.
func vacuum(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "VACUUM (ANALYZE)")
	return err
}

func seedEmail(i int) string { return fmt.Sprintf("seed-%d@example.com", i) }

// session is one signed-in client of the bench.
type session struct {
	access, refresh string
}

// settle is how long after start-up and after the load the idle RSS is
// read: long enough for the hasher to hand back the memory of its hashes
// (it does after a second without one).
const settle = 2 * time.Second

// benchDatabase runs every phase on one database; it returns the rows and
// the idle RSS after start-up and after the load.
func benchDatabase(ctx context.Context, o *options, kind, bin, tmp string, hashRate float64, echoRuns []*run) ([]row, [2]int64, error) {
	var mem [2]int64
	db, err := openDatabase(ctx, kind, tmp)
	if err != nil {
		return nil, mem, err
	}
	defer db.teardown()
	fmt.Fprintf(os.Stderr, "bench: %s: seeding %d accounts\n", kind, o.accounts)
	t0 := time.Now()
	if err := seed(ctx, db.dsn, o.accounts); err != nil {
		return nil, mem, fmt.Errorf("seeding: %w", err)
	}
	if kind == "postgres" {
		// A bulk insert leaves autovacuum work to do (analyze, and vacuum
		// after inserts) that would otherwise run during the phases, the
		// more the more accounts: do it now, as a database at rest has.
		if err := vacuum(ctx, db.dsn); err != nil {
			return nil, mem, fmt.Errorf("vacuum after seeding: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s: seeded in %v\n", kind, time.Since(t0).Round(time.Millisecond))

	addr, err := freeAddr()
	if err != nil {
		return nil, mem, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"LATCHKEY_ADDR="+addr,
		"LATCHKEY_DATA_DIR="+filepath.Join(tmp, kind+"-data"),
		"LATCHKEY_DATABASE_URL="+db.dsn,
		"LATCHKEY_MASTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"LATCHKEY_RATE_LIMITS=off",
		"LATCHKEY_LOG_FORMAT=json",
	)
	// Where /metrics is served when it has a listener of its own (else
	// the main listener serves it).
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, mem, err
	}
	env = append(env, "LATCHKEY_METRICS_ADDR="+metricsAddr)
	var debugAddr string
	if o.profileDir != "" {
		if debugAddr, err = freeAddr(); err != nil {
			return nil, mem, err
		}
		env = append(env, "LATCHKEY_DEBUG_ADDR="+debugAddr)
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return nil, mem, err
		}
	}
	logFile, err := os.Create(filepath.Join(tmp, kind+"-server.log"))
	if err != nil {
		return nil, mem, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	srv, err := start(cmd, "http://"+addr, "/readyz")
	if err != nil {
		return nil, mem, fmt.Errorf("%w (log: %s)", err, logFile.Name())
	}
	defer srv.stop()
	time.Sleep(settle)
	mem[0], _, _ = procMem(srv.pid())

	maxC := 0
	for _, c := range o.conc {
		maxC = max(maxC, c)
	}
	client := newClient(maxC)
	defer client.CloseIdleConnections()
	b := &bencher{o: o, client: client, base: srv.base + "/api", kind: kind, metrics: []string{srv.base + "/metrics", "http://" + metricsAddr + "/metrics"}}
	// One session per client, signed in through the API: the refresh
	// chains, the bearers of GET /me and the avatar owners.
	for i := range maxC {
		s, err := b.signIn(ctx, seedEmail(i%o.accounts))
		if err != nil {
			return nil, mem, fmt.Errorf("signing in the clients: %w", err)
		}
		b.sessions = append(b.sessions, s)
	}
	b.avatar = testPNG()

	var rows []row
	for _, path := range o.paths {
		spec, ok := b.paths()[strings.TrimSpace(path)]
		if !ok {
			return nil, mem, fmt.Errorf("unknown path %q", path)
		}
		for ci, c := range o.conc {
			ceiling := hashRate
			if spec.hashes {
				// Again just before the phase (and after it, below): other
				// work on a shared machine moves this ceiling from minute
				// to minute.
				if ceiling, err = argon2Ceiling(o.duration); err != nil {
					return nil, mem, err
				}
			}
			drive(ctx, c, o.warmup, o.maxRequests, spec.ok, spec.do)
			var profDone chan struct{}
			if debugAddr != "" {
				profDone = make(chan struct{})
				go func() {
					defer close(profDone)
					fetchProfile(debugAddr, o.duration, filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-c%d.pprof", kind, path, c)))
				}()
			}
			cpu0, _ := procCPU(srv.pid())
			peakReset := resetPeakRSS(srv.pid())
			opened0 := b.poolOpened(ctx)
			sess0 := db.pgSessions(ctx)
			r := drive(ctx, c, o.duration, o.maxRequests, spec.ok, spec.do)
			cpu1, _ := procCPU(srv.pid())
			_, hwm, _ := procMem(srv.pid())
			if !peakReset {
				hwm = -1
			}
			conns := "-"
			if opened1 := b.poolOpened(ctx); opened0 >= 0 && opened1 >= 0 {
				conns = strconv.FormatInt(opened1-opened0, 10)
			}
			if s1 := db.pgSessions(ctx); sess0 >= 0 && s1 >= 0 {
				conns += fmt.Sprintf(" (pg %d)", s1-sess0)
			}
			ratio := ""
			if spec.hashes {
				after, err := argon2Ceiling(o.duration)
				if err != nil {
					return nil, mem, err
				}
				ceiling = (ceiling + after) / 2
				ratio = fmt.Sprintf("%.0f%% of argon2 %.1f/s", 100*r.rate()/ceiling, ceiling)
			} else if er := echoRuns[ci].rate(); er > 0 {
				ratio = fmt.Sprintf("%.1f%% echo", 100*r.rate()/er)
			}
			if profDone != nil {
				<-profDone
			}
			rows = append(rows, row{db: kind, path: spec.name, c: c, r: r, cpu: perRequest(cpu1-cpu0, r.requests), peakKiB: hwm, conns: conns, ratio: ratio})
			fmt.Fprintf(os.Stderr, "bench: %s %s c=%d: %.0f req/s, p99 %s ms, errors %s\n", kind, spec.name, c, r.rate(), ms(quantile(r.latency, .99)), errorsText(r.statuses))
		}
	}
	time.Sleep(settle)
	mem[1], _, _ = procMem(srv.pid())
	return rows, mem, nil
}

// fetchProfile saves a CPU profile of d from the server's debug listener.
func fetchProfile(addr string, d time.Duration, file string) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "bench: profile: status", res.StatusCode)
		return
	}
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: profile:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, res.Body)
}

// bencher holds what the request functions share.
type bencher struct {
	o        *options
	client   *http.Client
	base     string // http://127.0.0.1:port/api
	kind     string
	sessions []session
	avatar   []byte
	signups  atomic.Int64
	signins  atomic.Int64
	metrics  []string // where /metrics may be, in order
}

type pathSpec struct {
	name   string
	ok     func(int) bool
	do     step
	hashes bool // bounded by argon2id
}

func (b *bencher) paths() map[string]pathSpec {
	return map[string]pathSpec{
		"signup":  {"sign-up", is(201), b.signUpStep, true},
		"signin":  {"sign-in", is(200), b.signInStep, true},
		"refresh": {"refresh", is(200), b.refreshStep, false},
		"me":      {"GET /me", is(200), b.meStep, false},
		"avatar":  {"avatar upload", is(204), b.avatarStep, false},
	}
}

func (b *bencher) post(ctx context.Context, path string, body any, bearer string) (*http.Request, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "latchkey-bench")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req, nil
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (b *bencher) signIn(ctx context.Context, email string) (session, error) {
	req, err := b.post(ctx, "/auth", map[string]string{"email": email, "password": benchPassword}, "")
	if err != nil {
		return session{}, err
	}
	st, body, err := send(b.client, req, true)
	if err != nil {
		return session{}, err
	}
	if st != http.StatusOK {
		return session{}, fmt.Errorf("sign-in answered %d: %s", st, body)
	}
	var tp tokenPair
	if err := json.Unmarshal(body, &tp); err != nil || tp.RefreshToken == "" {
		return session{}, fmt.Errorf("sign-in answered without tokens: %s", body)
	}
	return session{access: tp.AccessToken, refresh: tp.RefreshToken}, nil
}

func (b *bencher) signUpStep(ctx context.Context, _ int) outcome {
	n := b.signups.Add(1)
	email := fmt.Sprintf("signup-%s-%d@example.com", b.kind, n)
	req, err := b.post(ctx, "/register", map[string]string{"email": email, "password": benchPassword, "name": "Bench"}, "")
	if err != nil {
		return outcome{err: err}
	}
	st, _, err := send(b.client, req, false)
	return outcome{st, err}
}

func (b *bencher) signInStep(ctx context.Context, _ int) outcome {
	n := b.signins.Add(1)
	req, err := b.post(ctx, "/auth", map[string]string{"email": seedEmail(int(n) % b.o.accounts), "password": benchPassword}, "")
	if err != nil {
		return outcome{err: err}
	}
	st, _, err := send(b.client, req, false)
	return outcome{st, err}
}

// refreshStep rotates worker w's own chain. When the chain breaks (an
// error answer), the worker signs in again, unmeasured by the next call.
func (b *bencher) refreshStep(ctx context.Context, w int) outcome {
	s := &b.sessions[w]
	req, err := b.post(ctx, "/auth/refresh", map[string]string{"refresh_token": s.refresh}, "")
	if err != nil {
		return outcome{err: err}
	}
	st, body, err := send(b.client, req, true)
	if err == nil && st == http.StatusOK {
		var tp tokenPair
		if json.Unmarshal(body, &tp) == nil && tp.RefreshToken != "" {
			s.refresh = tp.RefreshToken
			return outcome{st, nil}
		}
		return outcome{err: errors.New("refresh answered without a token")}
	}
	if st == http.StatusUnauthorized {
		if fresh, err := b.signIn(ctx, seedEmail(w%b.o.accounts)); err == nil {
			s.refresh = fresh.refresh
		}
	}
	return outcome{st, err}
}

func (b *bencher) meStep(ctx context.Context, w int) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/me", nil)
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+b.sessions[w].access)
	st, _, err := send(b.client, req, false)
	return outcome{st, err}
}

func (b *bencher) avatarStep(ctx context.Context, w int) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/me/avatar", bytes.NewReader(b.avatar))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+b.sessions[w].access)
	st, _, err := send(b.client, req, false)
	return outcome{st, err}
}

// testPNG is a 128×128 gradient, a typical small avatar.
func testPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 128, 128))
	for y := range 128 {
		for x := range 128 {
			img.Set(x, y, color.RGBA{uint8(2 * x), uint8(2 * y), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// poolOpened reads latchkey_db_connections_opened_total from /metrics (the
// pool's own count of connections opened); -1 when the binary has no such
// series.
func (b *bencher) poolOpened(ctx context.Context) int64 {
	for _, u := range b.metrics {
		if n := b.scrapeOpened(ctx, u); n >= 0 {
			return n
		}
	}
	return -1
}

func (b *bencher) scrapeOpened(ctx context.Context, metricsURL string) int64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	st, body, err := send(b.client, req, true)
	if err != nil || st != http.StatusOK {
		return -1
	}
	var total float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "latchkey_db_connections_opened_total") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			total += v
			found = true
		}
	}
	if !found {
		return -1
	}
	return int64(total)
}
