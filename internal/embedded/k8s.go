package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/k8s"
)

// K8sOptions configure the built-in Kubernetes worker (k8s-pod apps),
// registered only when a cluster configuration is found: Kubeconfig, else
// $KUBECONFIG, the in-cluster service account or ~/.kube/config. Finding
// one contacts no cluster; the worker lists its pods (re-adoption) in the
// background. Disabled skips it.
type K8sOptions struct {
	k8s.Options
	Kubeconfig string
	Disabled   bool
}

// startK8s registers the Kubernetes worker when a cluster configuration is
// found; otherwise it notes why not. A failure here never stops the server.
func (s *System) startK8s(ctx context.Context, o K8sOptions) {
	if o.Disabled {
		s.k8sNote = "disabled"
		return
	}
	file, inCluster := k8s.FindKubeconfig(o.Kubeconfig)
	if file == "" && !inCluster {
		s.k8sNote = "no kubeconfig or in-cluster config found"
		return
	}
	cc, err := k8s.LoadConfig(o.Kubeconfig)
	if err != nil {
		s.k8sNote = err.Error()
		s.log.Warn("k8s-pod apps are unavailable", "reason", err.Error())
		return
	}
	if o.Namespace == "" {
		o.Namespace = cc.Namespace
	}
	if o.WorkerID == "" {
		o.WorkerID = "hypha-k8s-builtin" // not a standalone worker's default id
	}
	if o.Logger == nil {
		o.Logger = s.log.With("component", "k8s-worker")
	}
	w, err := k8s.NewForConfig(cc, o.Options)
	if err != nil {
		s.k8sNote = err.Error()
		return
	}
	tok, err := s.RootToken(365 * 24 * time.Hour)
	if err == nil {
		var c *rpc.Client
		c, err = s.Server.Connect(ctx, rpc.Config{Workspace: "public", ClientID: "builtin-k8s-worker", Token: tok, Logger: o.Logger})
		if err == nil {
			s.clients = append(s.clients, c)
			var h *hyphaworker.Hosted
			h, err = hyphaworker.Host(ctx, c, w, hyphaworker.Options{Visibility: hyphaworker.Public, Logger: o.Logger})
			if err == nil {
				s.workers = append(s.workers, h)
			}
		}
	}
	if err != nil {
		_ = w.Shutdown(ctx)
		s.k8sNote = fmt.Sprintf("registration failed: %v", err)
		s.log.Warn("k8s-pod apps are unavailable", "reason", s.k8sNote)
		return
	}
	w.AdoptAsync(time.Minute)
	s.k8sWorker, s.k8sSource = w, cc.Source
	s.log.Info("Kubernetes worker registered", "config", cc.Source, "namespace", w.Options().Namespace)
}

// K8sWorker is the built-in Kubernetes worker, nil when it is not running.
func (s *System) K8sWorker() *k8s.Worker { return s.k8sWorker }

// K8sStatus says, for start-up messages, which cluster configuration and
// namespace the Kubernetes worker uses, or why k8s-pod apps are
// unavailable.
func (s *System) K8sStatus() string {
	if s.k8sWorker == nil {
		return "k8s-pod apps unavailable: " + s.k8sNote
	}
	return fmt.Sprintf("k8s-pod in namespace %s (%s)", s.k8sWorker.Options().Namespace, s.k8sSource)
}
