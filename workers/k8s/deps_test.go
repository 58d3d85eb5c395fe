package k8s

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
)

// TestBinaryHasNoFullClientset keeps client-go's typed clientset and
// informer factory out of the hypha binary: they bring the types of every
// API group, which made the binary four times bigger (docs/workers.md,
// "Kubernetes worker"). Tests may use the fake clientset; production code
// goes through CoreClient.
func TestBinaryHasNoFullClientset(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.CommandContext(testserver.Ctx(t), goBin, "list", "-deps", "github.com/hypha-go/hypha/cmd/hypha").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "k8s.io/client-go/kubernetes") || strings.HasPrefix(pkg, "k8s.io/client-go/informers") {
			t.Errorf("cmd/hypha depends on %s", pkg)
		}
	}
}
