package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/worker"
)

// TestResources: defaults fill what a manifest leaves out, a request above
// the default limit raises the limit, and asks above the namespace maximum
// or with bad quantities are refused with the field named.
func TestResources(t *testing.T) {
	o := Options{Client: nil}.withDefaults()
	o.MaxLimits[corev1.ResourceMemory] = resource.MustParse("2Gi")
	type rl = map[string]any
	for _, tc := range []struct {
		name     string
		in       any
		req, lim [2]string // cpu, memory
		err      string
	}{
		{"defaults", nil, [2]string{"100m", "128Mi"}, [2]string{"1", "512Mi"}, ""},
		{"requests only", rl{"requests": rl{"cpu": "250m", "memory": "1Gi"}}, [2]string{"250m", "1Gi"}, [2]string{"1", "1Gi"}, ""},
		{"limits only, below default request", rl{"limits": rl{"cpu": "50m", "memory": "64Mi"}}, [2]string{"50m", "64Mi"}, [2]string{"50m", "64Mi"}, ""},
		{"both", rl{"requests": rl{"cpu": 1, "memory": "256Mi"}, "limits": rl{"cpu": "2", "memory": "1Gi"}}, [2]string{"1", "256Mi"}, [2]string{"2", "1Gi"}, ""},
		{"request above limit", rl{"requests": rl{"cpu": "2"}, "limits": rl{"cpu": "1"}}, [2]string{}, [2]string{}, "resources.requests.cpu 2 is more than resources.limits.cpu 1"},
		{"above maximum", rl{"limits": rl{"memory": "64Gi"}}, [2]string{}, [2]string{}, "resources.limits.memory 64Gi exceeds the maximum 2Gi"},
		{"huge request", rl{"requests": rl{"cpu": "100000"}}, [2]string{}, [2]string{}, "resources.limits.cpu 100k exceeds the maximum 4"},
		{"bad quantity", rl{"limits": rl{"memory": "lots"}}, [2]string{}, [2]string{}, `resources.limits.memory "lots" is not a quantity`},
		{"negative", rl{"requests": rl{"cpu": "-1"}}, [2]string{}, [2]string{}, "must be more than zero"},
		{"gpu", rl{"limits": rl{"nvidia.com/gpu": "1"}}, [2]string{}, [2]string{}, "only cpu and memory"},
		{"unknown key", rl{"quota": rl{}}, [2]string{}, [2]string{}, `resources.quota: only "requests" and "limits"`},
		{"not a map", "1Gi", [2]string{}, [2]string{}, "resources must be a map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := o.resources(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [4]string{rr.Requests.Cpu().String(), rr.Requests.Memory().String(), rr.Limits.Cpu().String(), rr.Limits.Memory().String()}
			want := [4]string{tc.req[0], tc.req[1], tc.lim[0], tc.lim[1]}
			if got != want {
				t.Fatalf("requests/limits = %v, want %v", got, want)
			}
		})
	}
	// A default above the maximum is a configuration error of the worker.
	_, err := New(Options{Client: newFakeCluster(t).client(), DefaultLimits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Gi")}})
	if !errors.Is(err, worker.ErrInvalidConfig) {
		t.Fatalf("new with default above maximum: %v", err)
	}
}

// TestHostileManifests: manifests asking for privileges, host access, bad
// names or huge values are refused before any pod is created, with an
// error naming the field.
func TestHostileManifests(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	long := strings.Repeat("a", 70<<10)
	var manyArgs []any
	for range 300 {
		manyArgs = append(manyArgs, "x")
	}
	for _, tc := range []struct {
		name  string
		image any
		extra map[string]any
		want  string
	}{
		{"privileged", "test/lines:1", map[string]any{"privileged": true}, `field "privileged" is not allowed`},
		{"security context", "test/lines:1", map[string]any{"security_context": map[string]any{"runAsUser": 0}}, `"security_context" is not allowed`},
		{"host path", "test/lines:1", map[string]any{"hostPath": "/"}, `"hostPath" is not allowed`},
		{"volumes", "test/lines:1", map[string]any{"volumes": []any{map[string]any{"hostPath": map[string]any{"path": "/"}}}}, `"volumes" is not allowed`},
		{"host network", "test/lines:1", map[string]any{"host_network": true}, `"host_network" is not allowed`},
		{"service account", "test/lines:1", map[string]any{"service_account_name": "admin"}, `"service_account_name" is not allowed`},
		{"no image", nil, nil, `required field "image"`},
		{"untagged image", "python", nil, `image "python" has no tag`},
		{"registry port without tag", "registry:5000/app", nil, `has no tag`},
		{"image with spaces", "python:3 --privileged", nil, "spaces or control characters"},
		{"image too long", "a:" + long, nil, "at most 512 allowed"},
		{"token override", "test/lines:1", map[string]any{"env": map[string]any{"HYPHA_TOKEN": "stolen"}}, `env name "HYPHA_TOKEN": HYPHA_* variables are set by the worker`},
		{"bad env name", "test/lines:1", map[string]any{"env": map[string]any{"A=B": "x"}}, `env name "A=B"`},
		{"env not a map", "test/lines:1", map[string]any{"env": []any{"A=B"}}, "env must be a map"},
		{"command not a list", "test/lines:1", map[string]any{"command": "rm -rf /"}, "command must be a list"},
		{"too many args", "test/lines:1", map[string]any{"command": manyArgs}, "command has 300 items"},
		{"huge arg", "test/lines:1", map[string]any{"command": []any{long}}, "command[0] is 71680 bytes long"},
		{"huge resources", "test/lines:1", map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Ei"}}}, "exceeds the maximum 8Gi"},
		{"bad pull policy", "test/lines:1", map[string]any{"image_pull_policy": "Sometimes"}, "image_pull_policy Sometimes"},
		{"bad restart policy", "test/lines:1", map[string]any{"restart_policy": "Forever"}, "restart_policy Forever"},
		{"negative timeout", "test/lines:1", map[string]any{"timeout": -5}, "timeout -5"},
		{"endless timeout", "test/lines:1", map[string]any{"timeout": 1e12}, "at most 86400"},
		{"bad node selector", "test/lines:1", map[string]any{"node_selector": map[string]any{"bad key!": "x"}}, `node_selector label "bad key!"`},
		{"bad node selector value", "test/lines:1", map[string]any{"node_selector": map[string]any{"disk": "ssd; rm"}}, `node_selector["disk"]`},
		{"bad toleration operator", "test/lines:1", map[string]any{"tolerations": []any{map[string]any{"key": "gpu", "operator": "Like"}}}, "operator \"Like\""},
		{"toleration unknown field", "test/lines:1", map[string]any{"tolerations": []any{map[string]any{"key": "gpu", "privileged": true}}}, "tolerations[0].privileged: unknown field"},
		{"other app type", "test/lines:1", map[string]any{"type": "python-eval"}, `app type "python-eval" is not run`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config("h", "", tc.extra)
			if tc.image == nil {
				delete(cfg.Manifest, "image")
			} else {
				cfg.Manifest["image"] = tc.image
			}
			_, err := w.Start(testserver.Ctx(t), cfg)
			if !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start error %v, want ErrInvalidConfig saying %q", err, tc.want)
			}
		})
	}
	for _, a := range fc.cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			t.Fatalf("a pod was created for a refused manifest: %v", a)
		}
	}
	// Valid node selector and tolerations reach the pod.
	cfg := config("ok", "test/lines:1", map[string]any{
		"node_selector": map[string]any{"kubernetes.io/arch": "amd64"},
		"tolerations":   []any{map[string]any{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}},
	})
	id, err := w.Start(testserver.Ctx(t), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	p := fc.pod(t, PodName(id))
	if p.Spec.NodeSelector["kubernetes.io/arch"] != "amd64" || len(p.Spec.Tolerations) != 1 || p.Spec.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Fatalf("node selector %v tolerations %v", p.Spec.NodeSelector, p.Spec.Tolerations)
	}
}

// TestHostilePodNames: whatever the session id holds, the pod name is a
// valid DNS label, and different ids give different names.
func TestHostilePodNames(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{
		"ws-a/c1", "WS-A/C1", "ws/../../etc", "", "/", "ws/" + strings.Repeat("x", 300), "ws/ünïcödé",
		"ws/a_b", "ws/a.b", "-ws-/-c-", "ws/a--b", "ws/a-b",
	} {
		name := PodName(id)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("PodName(%q) = %q: %v", id, name, errs)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("PodName(%q) = PodName(%q) = %q", id, prev, name)
		}
		seen[name] = id
	}
}

// TestHostileOtherWorkspace: a caller of another workspace sees nothing of
// a session and cannot stop it, read its logs or execute in it.
func TestHostileOtherWorkspace(t *testing.T) {
	fc := newFakeCluster(t)
	w := newWorker(t, fc, nil)
	id, err := w.Start(testserver.Ctx(t), config("c1", "test/lines:1", nil))
	if err != nil {
		t.Fatal(err)
	}
	other := worker.WithCaller(testserver.Ctx(t), worker.Caller{Workspace: "ws-b"})
	if _, err := w.GetSessionInfo(other, id); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("get_session_info from ws-b: %v", err)
	}
	if _, err := w.GetLogs(other, id, worker.LogQuery{}); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("get_logs from ws-b: %v", err)
	}
	if _, err := w.Execute(other, worker.ExecuteRequest{SessionID: id, Script: "echo hi"}); !errors.Is(err, worker.ErrSessionNotFound) {
		t.Fatalf("execute from ws-b: %v", err)
	}
	if l, _ := w.ListSessions(other, "ws-a"); len(l) != 0 {
		t.Fatalf("list from ws-b: %v", l)
	}
	if err := w.Stop(other, id); err != nil {
		t.Fatalf("stop from ws-b: %v", err)
	}
	if info, err := w.GetSessionInfo(context.Background(), id); err != nil || info.Status != worker.StatusRunning {
		t.Fatalf("session after ws-b's stop: %+v %v", info, err)
	}
	if len(fc.exec.requests()) != 0 {
		t.Fatal("a command ran for ws-b")
	}
}

// TestExampleManifest: examples/hello-k8s is a valid k8s-pod manifest
// within the default limits.
func TestExampleManifest(t *testing.T) {
	b, err := os.ReadFile("../../examples/hello-k8s/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m worker.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	ps, err := Options{}.withDefaults().parseManifest(m)
	if err != nil {
		t.Fatalf("examples/hello-k8s: %v", err)
	}
	if m.Type() != TypeK8sPod || ps.Resources.Limits.Memory().String() != "256Mi" || len(ps.Command) != 3 {
		t.Fatalf("parsed = %+v", ps)
	}
}
