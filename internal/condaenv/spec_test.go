package condaenv

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpecFromManifestShapes(t *testing.T) {
	s, err := SpecFromManifest("numpy", "bioconda")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(s, Spec{Dependencies: []string{"numpy"}, Channels: []string{"bioconda"}}) {
		t.Fatalf("string forms: %+v", s)
	}
	s, err = SpecFromManifest([]any{"numpy>=1.20", map[string]any{"pip": []any{"requests"}}, map[string]any{"pip": "hypha-rpc"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Dependencies: []string{"numpy>=1.20"}, Pip: []string{"requests", "hypha-rpc"}}
	if !cmp.Equal(s, want) {
		t.Fatalf("list form: %+v", s)
	}
	for _, bad := range []struct {
		deps, chans any
		want        string
	}{
		{42, nil, "dependencies is a int"},
		{[]any{1}, nil, "dependencies[0] is a int"},
		{[]any{map[string]any{"conda": []any{"x"}}}, nil, `has key "conda"`},
		{[]any{map[string]any{"pip": []any{1}}}, nil, "dependencies[0].pip[0]"},
		{nil, []any{true}, "channels[0] is a bool"},
		{nil, 3.5, "channels is a float64"},
	} {
		_, err := SpecFromManifest(bad.deps, bad.chans)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("SpecFromManifest(%v, %v) = %v; want %q", bad.deps, bad.chans, err, bad.want)
		}
	}
}

func TestNormalizeAddsKernelPackages(t *testing.T) {
	s := Spec{Dependencies: []string{"numpy", "ipykernel>=6", "numpy"}}.Normalize()
	want := Spec{
		Channels:     []string{"conda-forge"},
		Dependencies: []string{"numpy", "ipykernel>=6", "pip", "jupyter_client", "pyzmq"},
		Pip:          []string{},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Fatalf("normalised spec (-want +got):\n%s", diff)
	}
	// Idempotent, and the worker adds hypha-rpc once.
	if diff := cmp.Diff(s, s.Normalize()); diff != "" {
		t.Fatalf("Normalize is not idempotent:\n%s", diff)
	}
	w := s.WithPip(HyphaRPC).WithPip("Hypha_RPC")
	if !cmp.Equal(w.Pip, []string{"hypha-rpc"}) {
		t.Fatalf("WithPip: %v", w.Pip)
	}
	deps := w.ManifestDependencies()
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(deps)
	if got := strings.TrimSpace(buf.String()); got != `["numpy","ipykernel>=6","pip","jupyter_client","pyzmq",{"pip":["hypha-rpc"]}]` {
		t.Fatalf("ManifestDependencies: %s", got)
	}
}

func TestHashIsUpstreamsKey(t *testing.T) {
	a := Spec{Channels: []string{"conda-forge", "bioconda"}, Dependencies: []string{"numpy", "python=3.11"}, Pip: []string{"requests", "hypha-rpc"}}
	b := Spec{Channels: []string{"bioconda", "conda-forge"}, Dependencies: []string{"python=3.11", "numpy"}, Pip: []string{"requests", "hypha-rpc"}}
	if a.Hash() != b.Hash() {
		t.Fatal("hash depends on the order of dependencies or channels")
	}
	if c := (Spec{Channels: a.Channels, Dependencies: []string{"numpy"}}); c.Hash() == a.Hash() {
		t.Fatal("different specs share a hash")
	}
	// Upstream's key: sha256 of json.dumps of the sorted lists, computed by
	// Python itself.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	depsJSON, _ := json.Marshal(a.ManifestDependencies())
	chansJSON, _ := json.Marshal(a.Channels)
	out, err := exec.Command(py, "-c", `
import hashlib, json, sys
deps = json.loads(sys.argv[1]); chans = json.loads(sys.argv[2])
spec = {"dependencies": sorted(deps, key=lambda x: json.dumps(x, sort_keys=True)), "channels": sorted(chans)}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest())
`, string(depsJSON), string(chansJSON)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != a.Hash() {
		t.Fatalf("upstream key %s, ours %s", got, a.Hash())
	}
}

func TestValidateAcceptsRealSpecs(t *testing.T) {
	s := Spec{
		Channels: []string{"conda-forge", "nvidia/label/cuda-11.8.0", "https://conda.anaconda.org/pytorch"},
		Dependencies: []string{
			"python=3.11", "numpy>=1.20,<2", "scipy 1.11.*", "conda-forge::pandas", "pytorch::pytorch=2.1=py3.11_cuda11.8_0",
			"openssl!=3.0.0", "libblas=*=*mkl", "r-base>=4|<3", "_libgcc_mutex",
		},
		Pip: []string{"requests", "hypha-rpc>=0.20", "uvicorn[standard]==0.23.2", "Pillow~=10.0", "pkg @ https://example.org/pkg-1.0-py3-none-any.whl", "tool @ git+https://github.com/org/tool.git"},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHostileSpecStrings(t *testing.T) {
	conda := []string{
		"numpy; rm -rf /", "$(reboot)", "`id`", "numpy && curl evil", "numpy > /etc/passwd2 #",
		"-c", "--override-channels", "-p /tmp/x", "/etc/passwd", "./local-pkg", "../x",
		"file:///etc/passwd", "https://evil.example/pkg.tar.bz2", "numpy\nchannels: [evil]",
		"numpy\x00", "numpy'", `numpy"`, "numpy{a}", "", "x:y", "evil/../chan::numpy",
		strings.Repeat("a", MaxPackageLen+1), "ñumpy",
	}
	for _, d := range conda {
		err := Spec{Dependencies: []string{d}}.Validate()
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("conda spec %q accepted", d)
		}
	}
	pip := []string{
		"-r /etc/passwd", "--index-url=https://evil.example/simple", "-e .", "--extra-index-url", "-i",
		"pkg @ file:///tmp/x", "pkg @ http://evil.example/x.whl", "pkg @ https://user:pw@evil.example/x",
		"pkg @ /abs/path", "./dir", "/abs", "https://evil.example/x.whl", "pkg; os_name=='posix'",
		"pkg\n--index-url https://evil", "pkg $(id)", "pkg @ https://e.example/x?y=1", "",
	}
	for _, p := range pip {
		err := Spec{Pip: []string{p}}.Validate()
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("pip requirement %q accepted", p)
		}
	}
	chans := []string{"../x", "/abs/channel", "file:///x", "http://insecure.example", "a b", "-c", "./local", "a//b", "chan;x", ""}
	for _, c := range chans {
		err := Spec{Channels: []string{c}}.Validate()
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("channel %q accepted", c)
		}
	}
	big := make([]any, MaxPackages+1)
	for i := range big {
		big[i] = "numpy"
	}
	if _, err := SpecFromManifest(big, nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("%d dependencies accepted", len(big))
	}
	many := Spec{Dependencies: make([]string, MaxPackages+1)}
	for i := range many.Dependencies {
		many.Dependencies[i] = "numpy"
	}
	if err := many.Validate(); !errors.Is(err, ErrInvalidSpec) {
		t.Error("oversized spec accepted")
	}
	// The error names the entry and the problem.
	err := Spec{Dependencies: []string{"numpy", "numpy; rm -rf /"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "dependencies[1]") || !strings.Contains(err.Error(), "';'") {
		t.Errorf("error does not say what is wrong: %v", err)
	}
}

// TestHostileSpecNeverReachesTheSolver: a refused spec does not run the
// manager at all.
func TestHostileSpecNeverReachesTheSolver(t *testing.T) {
	c, log := newFakeCache(t)
	for _, s := range []Spec{
		{Dependencies: []string{"numpy; touch /tmp/pwned"}},
		{Pip: []string{"--index-url=https://evil.example/simple"}},
		{Channels: []string{"../../etc"}},
	} {
		if _, err := c.Get(context.Background(), s, nil); !errors.Is(err, ErrInvalidSpec) {
			t.Fatalf("Get(%+v) = %v", s, err)
		}
	}
	if n := builds(t, log); n != 0 {
		t.Fatalf("the fake conda ran %d times", n)
	}
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "envs"))
	if len(ents) != 0 {
		t.Fatalf("envs created: %v", ents)
	}
}

func TestEnvironmentYAMLQuotesEverything(t *testing.T) {
	s := Spec{Channels: []string{"conda-forge"}, Dependencies: []string{"numpy>=1"}, Pip: []string{"requests"}}
	want := "channels:\n  - \"conda-forge\"\ndependencies:\n  - \"numpy>=1\"\n  - pip:\n      - \"requests\"\n"
	if got := string(s.environmentYAML()); got != want {
		t.Fatalf("environment.yml:\n%s", got)
	}
}

func TestPipOnlyDetection(t *testing.T) {
	for _, tc := range []struct {
		deps []string
		cons string
		ok   bool
	}{
		{nil, "", true},
		{[]string{"python=3.11"}, "=3.11", true},
		{[]string{"python>=3.8,<4"}, ">=3.8,<4", true},
		{[]string{"python", "ipykernel"}, "", true},
		{[]string{"numpy"}, "", false},
		{[]string{"ipykernel>=6"}, "", false},
		{[]string{"conda-forge::python"}, "", false},
		{[]string{"python=3.11|3.12"}, "", false},
	} {
		cons, ok := Spec{Dependencies: tc.deps, Pip: []string{"requests"}}.Normalize().PipOnly()
		if ok != tc.ok || ok && cons != tc.cons {
			t.Errorf("PipOnly(%v) = %q, %v; want %q, %v", tc.deps, cons, ok, tc.cons, tc.ok)
		}
	}
	for _, tc := range []struct {
		v    [3]int
		cons string
		ok   bool
	}{
		{[3]int{3, 11, 2}, "", true},
		{[3]int{3, 11, 2}, "=3.11", true},
		{[3]int{3, 11, 2}, "3.11.*", true},
		{[3]int{3, 11, 2}, "==3.11.2", true},
		{[3]int{3, 11, 2}, "==3.11", false},
		{[3]int{3, 11, 2}, "=3.12", false},
		{[3]int{3, 11, 2}, ">=3.9,<3.13", true},
		{[3]int{3, 11, 2}, ">3.11", true},
		{[3]int{3, 11, 0}, ">3.11", false},
		{[3]int{3, 11, 2}, "!=3.11.2", false},
		{[3]int{3, 11, 2}, "=2.7", false},
	} {
		got, err := matchVersion(tc.v, tc.cons)
		if err != nil || got != tc.ok {
			t.Errorf("matchVersion(%v, %q) = %v, %v; want %v", tc.v, tc.cons, got, err, tc.ok)
		}
	}
}

func TestDetectOrderAndExplicitPath(t *testing.T) {
	fake := fakeConda(t)
	bin := t.TempDir()
	look := func(name string) (string, error) {
		p := filepath.Join(bin, name)
		if _, err := os.Stat(p); err != nil {
			return "", exec.ErrNotFound
		}
		return p, nil
	}
	ctx := context.Background()
	if _, err := Detect(ctx, Options{LookPath: look}); !errors.Is(err, ErrNoManager) {
		t.Fatalf("empty PATH: %v", err)
	}
	for _, step := range []struct{ add, want string }{{"conda", Conda}, {"mamba", Mamba}, {"micromamba", Micromamba}} {
		if err := os.Symlink(fake, filepath.Join(bin, step.add)); err != nil {
			t.Fatal(err)
		}
		m, err := Detect(ctx, Options{LookPath: look})
		if err != nil || m.Name != step.want || m.Version != "conda 24.1.2 (fake)" {
			t.Fatalf("after adding %s: %+v, %v", step.add, m, err)
		}
	}
	m, err := Detect(ctx, Options{LookPath: look, CondaPath: fake})
	if err != nil || m.Name != Conda || m.Path != fake {
		t.Fatalf("explicit path: %+v, %v", m, err)
	}
	if _, err := Detect(ctx, Options{LookPath: look, CondaPath: filepath.Join(bin, "nope")}); err == nil {
		t.Fatal("missing explicit path accepted")
	}
	if got := (Manager{Name: Micromamba, Path: "mm"}).CreateArgs("/p", "/f.yml"); !cmp.Equal(got, []string{"mm", "create", "-y", "-p", "/p", "-f", "/f.yml"}) {
		t.Fatalf("micromamba argv %v", got)
	}
	if got := (Manager{Name: Mamba, Path: "m"}).CreateArgs("/p", "/f.yml"); !cmp.Equal(got, []string{"m", "env", "create", "-p", "/p", "-f", "/f.yml", "-y"}) {
		t.Fatalf("mamba argv %v", got)
	}
}
