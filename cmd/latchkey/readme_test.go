package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// walkThroughBlock is one ```sh block of the README under a heading that
// starts with "Walk-through:".
type walkThroughBlock struct {
	heading string
	line    int // of the opening fence
	code    string
}

var headingRe = regexp.MustCompile(`^#{1,6}\s+(.*)$`)

// walkThroughs extracts the blocks the README test runs (the rule is
// written in a comment of the README, "Before the walk-throughs").
func walkThroughs(readme string) []walkThroughBlock {
	var out []walkThroughBlock
	var heading string
	var cur *walkThroughBlock
	inFence := false
	sc := bufio.NewScanner(strings.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !inFence && strings.HasPrefix(line, "```"):
			inFence = true
			if strings.TrimSpace(strings.TrimPrefix(line, "```")) == "sh" && strings.HasPrefix(heading, "Walk-through:") {
				cur = &walkThroughBlock{heading: heading, line: n}
			}
		case inFence && strings.TrimSpace(line) == "```":
			inFence = false
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		case inFence:
			if cur != nil {
				cur.code += line + "\n"
			}
		default:
			if m := headingRe.FindStringSubmatch(line); m != nil {
				heading = strings.TrimSpace(m[1])
			}
		}
	}
	return out
}

func TestWalkThroughExtraction(t *testing.T) {
	readme := "# T\n```sh\nnot run\n```\n## Walk-through: one\n```sh\necho a\n```\n```shell\nnot run\n```\n" +
		"text\n### Walk-through: two\n```sh\necho b\n```\n## Other\n```sh\nnot run\n```\n"
	got := walkThroughs(readme)
	if len(got) != 2 || got[0].code != "echo a\n" || got[1].code != "echo b\n" || got[1].heading != "Walk-through: two" {
		t.Fatalf("extracted %+v", got)
	}
}

// TestReadmeWalkThroughs runs the README's walk-throughs, as a newcomer
// pastes them, against the binary built from this tree: every ```sh block
// under a "Walk-through:" heading, in order, in one bash -e session, with
// the port rewritten, SQLite in a temporary dir and the log mailer's JSON
// log in ./latchkey.log. Any failing step (curl --fail-with-body, jq -e)
// fails the test with the script's output.
func TestReadmeWalkThroughs(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "oathtool", "base64"} {
		requireTool(t, tool)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := walkThroughs(string(readme))
	if len(blocks) < 4 {
		t.Fatalf("found %d walk-through blocks, want at least 4: were headings renamed?", len(blocks))
	}
	if !strings.Contains(string(readme), `under a heading that starts with "Walk-through:"`) {
		t.Error("the README no longer says which blocks this test runs")
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePort(t))
	logFile, err := os.Create(filepath.Join(work, "latchkey.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, bin, "serve")
	srv.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"LATCHKEY_ADDR=127.0.0.1:" + port, "LATCHKEY_PUBLIC_URL=http://localhost:" + port,
		"LATCHKEY_DATA_DIR=" + filepath.Join(dir, "data"), "LATCHKEY_LOG_FORMAT=json",
	}
	srv.Stderr = logFile
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		_ = srv.Wait()
	}()
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("latchkey did not start:\n%s", log)
		}
	}

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "echo '==> README.md:%d (%s), block %d'\n", b.line, strings.ReplaceAll(b.heading, "'", ""), i+1)
		script.WriteString(strings.ReplaceAll(b.code, "localhost:8080", "localhost:"+port))
	}
	sh := exec.CommandContext(ctx, "bash", "-e", "-c", script.String())
	sh.Dir = work
	sh.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C.UTF-8"}
	out, err := sh.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(logFile.Name())
		t.Fatalf("the walk-throughs fail (%v):\n%s\n--- latchkey.log (tail) ---\n%s", err, out, tail(string(log), 30))
	}
	t.Logf("ran %d blocks", len(blocks))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
