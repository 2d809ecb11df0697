package latchkey_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/latchkey-dev/latchkey"

// layoutRule is one line of the import rules in DESIGN.md's Layout table:
// no package under root may depend, directly or through another package,
// on anything under forbidden. Tests are not packages here: a test may
// import what its package may not (the server tests run on the real store).
type layoutRule struct {
	root      string
	forbidden []string
	why       string
}

var (
	edge    = []string{"github.com/labstack/echo", "github.com/getkin/kin-openapi", module + "/gen", module + "/server"}
	storage = []string{"gorm.io", "github.com/jackc/pgx", "github.com/glebarez", "modernc.org/sqlite", module + "/store"}
)

var layoutRules = []layoutRule{
	{module + "/auth", append(slices.Clone(edge), storage...),
		"the domain never imports echo, gorm or gen: it knows neither HTTP nor the database"},
	{module + "/server", storage,
		"the HTTP edge talks to the database only through auth.Store"},
	{module + "/store", edge,
		"the store translates database errors into auth sentinels; HTTP is not its business"},
	{module + "/mail", append(slices.Clone(edge), storage...),
		"mailers implement auth.Mailer and know neither HTTP nor the database"},
	{module + "/auth/outbox", append(append([]string{module}, edge...), storage...),
		"the outbox worker knows leases, backoff and its lifecycle, not who gets which mail: it imports nothing of latchkey (auth implements its Queue), nor the database"},
}

// TestLayoutImports fails when a package imports across the layers: auth
// reaching echo, gorm or gen, server reaching store or gorm, and so on.
func TestLayoutImports(t *testing.T) {
	var roots []string
	for _, r := range layoutRules {
		roots = append(roots, "./"+strings.TrimPrefix(r.root, module+"/")+"/...")
	}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports"}, roots...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph, err := parseGoList(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range layoutRules {
		if !slices.ContainsFunc(keys(graph), func(p string) bool { return under(p, r.root) }) {
			t.Errorf("no package under %s: the rule guards nothing (moved?)", r.root)
		}
	}
	for _, v := range layoutViolations(graph, layoutRules) {
		t.Error(v)
	}
}

// TestLayoutViolationsFindsIndirectImports shows the check can fail: an
// import that breaks a rule two packages away is found and its path named.
func TestLayoutViolationsFindsIndirectImports(t *testing.T) {
	graph := map[string][]string{
		module + "/auth":          {"errors", module + "/auth/password"},
		module + "/auth/password": {"gorm.io/gorm"},
		module + "/server":        {module + "/auth", module + "/store"},
		module + "/store":         {module + "/auth", "gorm.io/gorm"},
		module + "/auth/outbox":   {"context", module + "/auth"},
		"gorm.io/gorm":            nil,
		"context":                 nil,
		"errors":                  nil,
	}
	got := layoutViolations(graph, layoutRules)
	want := []string{
		"auth depends on gorm.io/gorm (auth -> auth/password -> gorm.io/gorm)",
		"auth/password depends on gorm.io/gorm (auth/password -> gorm.io/gorm)",
		"server depends on gorm.io/gorm (server -> auth -> auth/password -> gorm.io/gorm)",
		"server depends on store (server -> store)",
		"auth/outbox depends on auth (auth/outbox -> auth)",
		"auth/outbox depends on gorm.io/gorm (auth/outbox -> auth -> auth/password -> gorm.io/gorm)",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("missing violation %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

// TestHandlerRouteComments: each handler method carries the one-line
// "// (POST /register)" comment of the generated interface method it
// implements, so a reader finds a route's handler with grep and a route
// moved in openapi.yaml cannot leave a stale comment behind.
func TestHandlerRouteComments(t *testing.T) {
	routes := map[string]string{} // method -> "(POST /register)"
	for _, f := range parseDir(t, "gen") {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name != "StrictServerInterface" {
				return true
			}
			for _, m := range ts.Type.(*ast.InterfaceType).Methods.List {
				if route := routeComment(m.Doc); route != "" && len(m.Names) == 1 {
					routes[m.Names[0].Name] = route
				}
			}
			return false
		})
	}
	if len(routes) == 0 {
		t.Fatal("no routes found in gen.StrictServerInterface")
	}
	seen := map[string]bool{}
	for _, f := range parseDir(t, "server") {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || len(fn.Recv.List) != 1 {
				continue
			}
			if !isHandlers(fn.Recv.List[0].Type) {
				continue
			}
			want, ok := routes[fn.Name.Name]
			if !ok {
				continue
			}
			seen[fn.Name.Name] = true
			if got := routeComment(fn.Doc); got != want {
				t.Errorf("server: (*Handlers).%s: route comment %q, want the line // %s", fn.Name.Name, got, want)
			}
		}
	}
	for m := range routes {
		if !seen[m] {
			t.Errorf("server: no (*Handlers).%s method for %s", m, routes[m])
		}
	}
}

// isHandlers reports whether a receiver type is *Handlers.
func isHandlers(recv ast.Expr) bool {
	star, ok := recv.(*ast.StarExpr)
	if !ok {
		return false
	}
	id, ok := star.X.(*ast.Ident)
	return ok && id.Name == "Handlers"
}

// routeComment is the "(METHOD /path)" line of a doc comment, if any.
func routeComment(doc *ast.CommentGroup) string {
	if doc == nil {
		return ""
	}
	for _, c := range doc.List {
		line := strings.TrimSpace(strings.TrimPrefix(c.Text, "//"))
		if strings.HasPrefix(line, "(") && strings.HasSuffix(line, ")") && strings.Contains(line, " /") {
			return line
		}
	}
	return ""
}

// parseDir parses the non-test Go files of one directory, with comments.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// layoutViolations names, for every package under a rule's root and every
// forbidden dependency it reaches, the shortest chain of imports to it.
func layoutViolations(graph map[string][]string, rules []layoutRule) []string {
	var out []string
	for _, r := range rules {
		for _, pkg := range keys(graph) {
			if !under(pkg, r.root) {
				continue
			}
			for _, chain := range forbiddenChains(graph, pkg, r.forbidden) {
				short := make([]string, len(chain))
				for i, p := range chain {
					short[i] = strings.TrimPrefix(p, module+"/")
				}
				out = append(out, short[0]+" depends on "+short[len(short)-1]+
					" ("+strings.Join(short, " -> ")+"): "+r.why)
			}
		}
	}
	return out
}

// forbiddenChains walks from pkg breadth first and returns the shortest
// import chain to each forbidden package it reaches (not beyond one).
func forbiddenChains(graph map[string][]string, pkg string, forbidden []string) [][]string {
	parent := map[string]string{pkg: ""}
	queue := []string{pkg}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, dep := range graph[p] {
			if _, seen := parent[dep]; seen {
				continue
			}
			parent[dep] = p
			if !slices.ContainsFunc(forbidden, func(f string) bool { return under(dep, f) }) {
				queue = append(queue, dep)
				continue
			}
			chain := []string{dep}
			for q := p; q != ""; q = parent[q] {
				chain = append([]string{q}, chain...)
			}
			chains = append(chains, chain)
		}
	}
	return chains
}

// under reports whether the import path p is root or inside it.
func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

func keys(graph map[string][]string) []string {
	out := make([]string, 0, len(graph))
	for k := range graph {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// parseGoList reads the JSON stream of `go list -json` into a graph of
// direct imports.
func parseGoList(data []byte) (map[string][]string, error) {
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return graph, nil
		}
		if err != nil {
			return nil, err
		}
		graph[p.ImportPath] = p.Imports
	}
}
