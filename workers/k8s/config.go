package k8s

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hypha-go/hypha/worker"
)

// ClusterConfig is how the worker reaches a cluster.
type ClusterConfig struct {
	REST *rest.Config
	// Source says where the configuration came from: "in-cluster" or the
	// kubeconfig's path.
	Source string
	// Namespace is the kubeconfig context's namespace (or the service
	// account's, in a cluster); empty when it names none.
	Namespace string
}

// FindKubeconfig returns the kubeconfig file to use: path if given, else
// $KUBECONFIG (its first entry), else ~/.kube/config if it exists; or ""
// with in-cluster true when the process runs in a pod
// (KUBERNETES_SERVICE_HOST set and the service account token present).
// It only looks at files and variables; nothing contacts a cluster.
func FindKubeconfig(path string) (file string, inCluster bool) {
	if path != "" {
		return path, false
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if _, err := os.Stat(p); err == nil {
				return p, false
			}
		}
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
			return "", true
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(p); err == nil {
			return p, false
		}
	}
	return "", false
}

// LoadConfig loads the cluster configuration: kubeconfig if given (or
// found as FindKubeconfig says), else the in-cluster one. The error wraps
// worker.ErrWorkerNotAvailable and says what was tried.
func LoadConfig(kubeconfig string) (ClusterConfig, error) {
	file, inCluster := FindKubeconfig(kubeconfig)
	switch {
	case inCluster:
		rc, err := rest.InClusterConfig()
		if err != nil {
			return ClusterConfig{}, fmt.Errorf("%w: in-cluster Kubernetes config: %w", worker.ErrWorkerNotAvailable, err)
		}
		ns := ""
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
			ns = string(b)
		}
		return ClusterConfig{REST: rc, Source: "in-cluster", Namespace: ns}, nil
	case file != "":
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: file}, &clientcmd.ConfigOverrides{})
		rc, err := cc.ClientConfig()
		if err != nil {
			return ClusterConfig{}, fmt.Errorf("%w: kubeconfig %s: %w", worker.ErrWorkerNotAvailable, file, err)
		}
		ns, _, _ := cc.Namespace()
		return ClusterConfig{REST: rc, Source: file, Namespace: ns}, nil
	}
	return ClusterConfig{}, fmt.Errorf("%w: no Kubernetes config found (give --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod)", worker.ErrWorkerNotAvailable)
}

// NewForConfig builds the worker's client, log source and executor for a
// real cluster into opts.
func NewForConfig(cc ClusterConfig, opts Options) (*Worker, error) {
	cs, err := NewRESTClient(cc.REST)
	if err != nil {
		return nil, fmt.Errorf("%w: Kubernetes client: %w", worker.ErrWorkerNotAvailable, err)
	}
	opts.Client = cs
	if opts.Executor == nil {
		opts.Executor = RemoteExecutor{Config: cc.REST, Client: cs}
	}
	return New(opts)
}
