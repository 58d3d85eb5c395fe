package embedded_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/workers/process"
)

// startK8s starts a system with only the process and Kubernetes workers.
func startK8s(t *testing.T, k embedded.K8sOptions) *embedded.System {
	t.Helper()
	sys, err := embedded.Start(testserver.Ctx(t), embedded.Options{
		Server:    server.Config{DataDir: t.TempDir(), Logger: testserver.Logger(t)},
		Addr:      "127.0.0.1:0",
		Process:   process.Options{WorkDir: testserver.SharedTempDir(t), Logger: testserver.Logger(t)},
		NoConda:   true,
		NoBrowser: true,
		K8s:       k,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	return sys
}

// TestEmbeddedK8sWorker: with a kubeconfig the system registers the
// Kubernetes worker in the kubeconfig's namespace, without contacting the
// cluster (this one is unreachable: no cluster runs here), and closes it
// cleanly.
func TestEmbeddedK8sWorker(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: "not-a-real-token"}
contexts:
- name: c
  context: {cluster: nowhere, user: u, namespace: hypha-apps}
current-context: c
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := startK8s(t, embedded.K8sOptions{Kubeconfig: kc})
	if sys.K8sWorker() == nil || !strings.Contains(sys.K8sStatus(), "namespace hypha-apps") || !strings.Contains(sys.K8sStatus(), kc) {
		t.Fatalf("k8s worker not registered: %s", sys.K8sStatus())
	}
	if o := sys.K8sWorker().Options(); o.WorkerID != "hypha-k8s-builtin" || o.Namespace != "hypha-apps" {
		t.Fatalf("worker id %q, namespace %q", o.WorkerID, o.Namespace)
	}
}

// TestEmbeddedNoKubeconfig: without any cluster configuration the system
// runs on without the Kubernetes worker and says why.
func TestEmbeddedNoKubeconfig(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	sys := startK8s(t, embedded.K8sOptions{})
	if sys.K8sWorker() != nil || !strings.Contains(sys.K8sStatus(), "no kubeconfig or in-cluster config found") {
		t.Fatalf("status = %q", sys.K8sStatus())
	}
}
