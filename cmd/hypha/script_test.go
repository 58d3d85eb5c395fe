package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig of screenshots
	_ "image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/browser"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	process.MaybeSupervise()
	testscript.Main(m, map[string]func(){
		"hypha": func() { os.Exit(run(os.Args[1:])) },
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each script gets its
// own embedded server (with apps controller and process worker) and the
// environment HYPHA_SERVER_URL / HYPHA_TOKEN pointing at it, plus
// EXAMPLES (the repository's examples directory).
func TestScripts(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	interopJS, err := filepath.Abs("../../interop/js")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		// [root]: the process runs as root (CI does), so apps change user.
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			if cond == "seedjs" {
				return seedJSReady(interopJS)
			}
			if cond == "chromium" {
				return chromiumReady()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			sys, err := embedded.Start(context.Background(), embedded.Options{
				Server: server.Config{JWTSecret: "script-secret", DataDir: filepath.Join(env.WorkDir, ".hypha-data"),
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
				Addr: "127.0.0.1:0",
			})
			if err != nil {
				return err
			}
			env.Defer(func() { sys.Close() })
			tok, err := sys.RootToken(time.Hour)
			if err != nil {
				return err
			}
			env.Setenv("HYPHA_SERVER_URL", sys.Server.URL())
			env.Setenv("HYPHA_TOKEN", tok)
			env.Setenv("EXAMPLES", examples)
			env.Setenv("FAKE_CONDA", filepath.Join(filepath.Dir(examples), "internal", "condaenv", "testdata", "fake-conda"))
			env.Setenv("INTEROP_JS", interopJS)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			env.Setenv("FREE_PORT", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			ln.Close()
			// APPTMP: a temp dir the app user can reach ($WORK is private),
			// for scripts that look into app working directories.
			appTmp, err := os.MkdirTemp("", "hypha-script-apps-")
			if err != nil {
				return err
			}
			env.Defer(func() { os.RemoveAll(appTmp) })
			if err := os.Chmod(appTmp, 0o755); err != nil {
				return err
			}
			env.Setenv("APPTMP", appTmp)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfile PATH: wait up to 15 s for PATH to exist.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waitfile PATH")
				}
				path := ts.MkAbs(args[0])
				for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if _, err := os.Stat(path); err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not appear within 15 s", path)
					}
				}
			},
			// waitglob PATTERN DEST: wait up to 15 s for a file matching
			// PATTERN and copy it to DEST.
			"waitglob": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: waitglob PATTERN DEST")
				}
				for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if m, _ := filepath.Glob(args[0]); len(m) > 0 {
						b, err := os.ReadFile(m[0])
						ts.Check(err)
						ts.Check(os.WriteFile(ts.MkAbs(args[1]), b, 0o600))
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("nothing matched %s within 15 s", args[0])
					}
				}
			},
			// pidgone FILE: the process whose pid FILE holds must be gone
			// within 10 s.
			"pidgone": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: pidgone FILE")
				}
				pid := strings.TrimSpace(ts.ReadFile(args[0]))
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if _, err := os.Stat("/proc/" + pid); err != nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("process %s is still running", pid)
					}
				}
			},
			// waithttp URL: wait up to 15 s for URL to answer 200.
			"waithttp": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waithttp URL")
				}
				deadline := time.Now().Add(15 * time.Second)
				for {
					resp, err := http.Get(args[0])
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not answer 200 within 15 s (last error: %v)", args[0], err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
			// exitcode N CMD ARGS...: run CMD like exec and require exit
			// code N; stdout and stderr are CMD's.
			"exitcode": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exitcode N CMD [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("%s: %v", args[1], err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
				}
			},
			// waitgrep FILE REGEXP: wait up to 60 s for FILE to match REGEXP.
			"waitgrep": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: waitgrep FILE REGEXP")
				}
				re, err := regexp.Compile(args[1])
				ts.Check(err)
				for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if b, err := os.ReadFile(ts.MkAbs(args[0])); err == nil && re.Match(b) {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not match %s within 60 s:\n%s", args[0], args[1], ts.ReadFile(args[0]))
					}
				}
			},
			// noprocs STRING: no process has STRING in its command line, now
			// (no waiting: what must be gone is gone already).
			"noprocs": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: noprocs STRING")
				}
				if pids := processesWith(args[0]); len(pids) > 0 {
					ts.Fatalf("processes with %s in their command line are left: %v", args[0], pids)
				}
			},
			// image FILE png|jpeg: FILE is an image of that format, at least
			// 100x100 pixels.
			"image": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: image FILE png|jpeg")
				}
				f, err := os.Open(ts.MkAbs(args[0]))
				ts.Check(err)
				defer f.Close()
				cfg, format, err := image.DecodeConfig(f)
				ts.Check(err)
				if format != args[1] || cfg.Width < 100 || cfg.Height < 100 {
					ts.Fatalf("%s: a %dx%d %s image, want %s of at least 100x100", args[0], cfg.Width, cfg.Height, format, args[1])
				}
			},
			// stdout2env VAR: set VAR to the last command's stdout, trimmed.
			"stdout2env": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: stdout2env VAR")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile("stdout")))
			},
		},
	})
}

// seedJSReady reports whether the seed-style JavaScript workers of
// interop/js/workers can run: node in PATH and `npm ci` done in interop/js
// (the interop tests run it; CI's .ci/run does too). In CI (CI=true) their
// absence is an error, not a reason to skip.
func seedJSReady(dir string) (bool, error) {
	_, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "hypha-rpc", "package.json"))
	}
	if err == nil {
		return true, nil
	}
	if ci := strings.ToLower(os.Getenv("CI")); ci == "true" || ci == "1" {
		return false, fmt.Errorf("the seed JS workers cannot run (CI is set, so this fails): %w; install Node.js and run npm ci in %s", err, dir)
	}
	return false, nil
}

// processesWith lists the pids whose command line contains s.
func processesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// chromiumReady reports whether a Chromium for the browser worker is
// installed; in CI (CI=true) its absence is an error, not a reason to skip.
func chromiumReady() (bool, error) {
	_, err := browser.FindChromium("")
	if err == nil {
		return true, nil
	}
	if ci := strings.ToLower(os.Getenv("CI")); ci == "true" || ci == "1" {
		return false, fmt.Errorf("the browser tests cannot run (CI is set, so this fails): %w", err)
	}
	return false, nil
}
