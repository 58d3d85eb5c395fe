package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hypha-go/hypha/internal/embedded"
	"github.com/hypha-go/hypha/workers/k8s"
)

// parseResourceList reads "cpu=500m,memory=1Gi" (either part may be left
// out) for the k8s worker's resource flags.
func parseResourceList(flag, s string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		name := corev1.ResourceName(strings.TrimSpace(k))
		if !ok || (name != corev1.ResourceCPU && name != corev1.ResourceMemory) {
			return nil, fmt.Errorf("%s %q: want cpu=QUANTITY,memory=QUANTITY", flag, s)
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() <= 0 {
			return nil, fmt.Errorf("%s: %s=%q is not a positive quantity (e.g. 500m, 2, 256Mi, 1Gi)", flag, name, v)
		}
		out[name] = q
	}
	return out, nil
}

func newK8sWorkerCmd() *cobra.Command {
	var wf workerFlags
	var opts k8s.Options
	var kubeconfig, pullPolicy, requests, limits, maxLimits string
	var timeoutSecs int
	cmd := &cobra.Command{
		Use:   "k8s",
		Short: "Run k8s-pod apps as pods in a Kubernetes namespace",
		Long: `Register a Kubernetes worker (app type k8s-pod, upstream's) with a Hypha
server. Each session is one pod in --namespace, made from the manifest's image
(with a tag), command, env, image_pull_policy, restart_policy, timeout,
resources, node_selector and tolerations. Pods run as uid 1000, non-root, with
every capability dropped, no privilege escalation, the runtime's seccomp
profile and no service account token; the HYPHA_* variables let the app
connect back. Resources not given in the manifest come from
--default-requests and --default-limits; a manifest asking for more than
--max-limits is refused.

The cluster is reached with --kubeconfig, else $KUBECONFIG, else the
in-cluster service account, else ~/.kube/config. The worker needs a Role
allowing pods (create, get, list, watch, delete), pods/log (get), pods/exec
(create, get) and events (list, watch) in the namespace (docs/workers.md).

Pods carry the label hypha.amun.ai/worker=--worker-id: a worker restarted
with the same id takes its running pods back as sessions. On SIGINT or
SIGTERM every session's pod is deleted and the worker unregisters.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			switch p := corev1.PullPolicy(pullPolicy); p {
			case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
				opts.ImagePullPolicy = p
			default:
				return fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", pullPolicy)
			}
			if timeoutSecs <= 0 {
				return fmt.Errorf("--default-timeout %d: want seconds, more than 0", timeoutSecs)
			}
			opts.DefaultTimeout = time.Duration(timeoutSecs) * time.Second
			if opts.DefaultRequests, err = parseResourceList("--default-requests", requests); err != nil {
				return err
			}
			if opts.DefaultLimits, err = parseResourceList("--default-limits", limits); err != nil {
				return err
			}
			if opts.MaxLimits, err = parseResourceList("--max-limits", maxLimits); err != nil {
				return err
			}
			st, err := wf.start(cmd)
			if err != nil {
				return err
			}
			ho, log := st.ho, st.log
			cc, err := k8s.LoadConfig(kubeconfig)
			if err != nil {
				return err
			}
			opts.Logger = log
			w, err := k8s.NewForConfig(cc, opts)
			if err != nil {
				return err
			}
			eff := w.Options()
			props, ho, err := ho.Check(w)
			if err != nil {
				_ = w.Shutdown(context.Background())
				return err
			}
			out := cmd.OutOrStdout()
			st.banner(out, &wf, "Kubernetes Worker", ho, props,
				fmt.Sprintf("Cluster config: %s", cc.Source),
				fmt.Sprintf("Namespace: %s", eff.Namespace),
				fmt.Sprintf("Worker ID: %s", eff.WorkerID),
				fmt.Sprintf("Default Timeout: %s", eff.DefaultTimeout),
				fmt.Sprintf("Image Pull Policy: %s", eff.ImagePullPolicy),
				fmt.Sprintf("Resources: requests %s, limits %s, maximum %s", resString(eff.DefaultRequests), resString(eff.DefaultLimits), resString(eff.MaxLimits)),
			)
			fmt.Fprintf(out, "  Max Sessions: %d\n", eff.MaxSessions)

			actx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			n, err := w.Adopt(actx)
			cancel()
			if err != nil {
				_ = w.Shutdown(context.Background())
				return fmt.Errorf("listing the worker's pods in namespace %s: %w", eff.Namespace, err)
			}
			fmt.Fprintf(out, "  Adopted sessions: %d\n", n)
			return serveWorker(cmd, &wf, "Kubernetes", w, w.Sessions.Len, ho, eff.StopGrace+60*time.Second)
		},
	}
	wf.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&opts.Namespace, "namespace", envOr("HYPHA_K8S_NAMESPACE", "default"), "Kubernetes namespace of the pods (HYPHA_K8S_NAMESPACE)")
	envIntVar(fs, &timeoutSecs, "default-timeout", "HYPHA_K8S_DEFAULT_TIMEOUT", 3600, "seconds a pod may take to start when its manifest gives no timeout (HYPHA_K8S_DEFAULT_TIMEOUT)")
	fs.StringVar(&pullPolicy, "image-pull-policy", envOr("HYPHA_K8S_IMAGE_PULL_POLICY", "IfNotPresent"), "image pull policy when the manifest gives none: Always, IfNotPresent or Never (HYPHA_K8S_IMAGE_PULL_POLICY)")
	fs.StringVar(&kubeconfig, "kubeconfig", envOr("HYPHA_K8S_KUBECONFIG", ""), "kubeconfig file (HYPHA_K8S_KUBECONFIG; default: $KUBECONFIG, the in-cluster config, ~/.kube/config)")
	fs.StringVar(&opts.WorkerID, "worker-id", envOr("HYPHA_K8S_WORKER_ID", "hypha-k8s-worker"), "label value tying pods to this worker; keep it stable to re-adopt pods after a restart (HYPHA_K8S_WORKER_ID)")
	envIntVar(fs, &opts.MaxSessions, "max-sessions", "HYPHA_K8S_MAX_SESSIONS", 50, "maximum number of sessions (HYPHA_K8S_MAX_SESSIONS)")
	fs.DurationVar(&opts.StopGrace, "stop-grace", 10*time.Second, "termination grace period of a stopped pod")
	fs.StringVar(&requests, "default-requests", envOr("HYPHA_K8S_DEFAULT_REQUESTS", "cpu=100m,memory=128Mi"), "resource requests of a pod whose manifest gives none (HYPHA_K8S_DEFAULT_REQUESTS)")
	fs.StringVar(&limits, "default-limits", envOr("HYPHA_K8S_DEFAULT_LIMITS", "cpu=1,memory=512Mi"), "resource limits of a pod whose manifest gives none (HYPHA_K8S_DEFAULT_LIMITS)")
	fs.StringVar(&maxLimits, "max-limits", envOr("HYPHA_K8S_MAX_LIMITS", "cpu=4,memory=8Gi"), "largest limits a manifest may ask for; larger asks are refused (HYPHA_K8S_MAX_LIMITS)")
	addSecretsFDFlag(fs)
	return cmd
}

func resString(l corev1.ResourceList) string {
	return fmt.Sprintf("cpu=%s,memory=%s", l.Cpu().String(), l.Memory().String())
}

// k8sFromEnv configures the embedded server's Kubernetes worker from the
// HYPHA_K8S_* variables that `hypha worker k8s` also reads.
func k8sFromEnv() (embedded.K8sOptions, error) {
	o := embedded.K8sOptions{Kubeconfig: envOr("HYPHA_K8S_KUBECONFIG", "")}
	o.Namespace = envOr("HYPHA_K8S_NAMESPACE", "")
	o.WorkerID = envOr("HYPHA_K8S_WORKER_ID", "hypha-k8s-builtin")
	secs := 3600
	if v := envOr("HYPHA_K8S_DEFAULT_TIMEOUT", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("HYPHA_K8S_DEFAULT_TIMEOUT=%q: want seconds, more than 0", v)
		}
		secs = n
	}
	o.DefaultTimeout = time.Duration(secs) * time.Second
	switch p := corev1.PullPolicy(envOr("HYPHA_K8S_IMAGE_PULL_POLICY", "")); p {
	case "":
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		o.ImagePullPolicy = p
	default:
		return o, fmt.Errorf("HYPHA_K8S_IMAGE_PULL_POLICY=%q: want Always, IfNotPresent or Never", p)
	}
	o.Disabled = envOr("HYPHA_K8S_DISABLED", "") != ""
	for _, r := range []struct {
		env string
		dst *corev1.ResourceList
	}{{"HYPHA_K8S_DEFAULT_REQUESTS", &o.DefaultRequests}, {"HYPHA_K8S_DEFAULT_LIMITS", &o.DefaultLimits}, {"HYPHA_K8S_MAX_LIMITS", &o.MaxLimits}} {
		l, err := parseResourceList(r.env, envOr(r.env, ""))
		if err != nil {
			return o, err
		}
		*r.dst = l
	}
	return o, nil
}
