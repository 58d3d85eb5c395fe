package k8s

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/hypha-go/hypha/worker"
)

// Labels and annotations that tie a pod to its session. The label keys are
// upstream's annotation prefix; the session id ("<workspace>/<client_id>")
// cannot be a label value (no "/"), so it is an annotation, and the pods of
// one worker are found by the worker label.
const (
	LabelApp       = "app"
	LabelComponent = "component"
	LabelWorker    = "hypha.amun.ai/worker"
	LabelWorkspace = "hypha.amun.ai/workspace"
	LabelSession   = "hypha.amun.ai/session-hash"

	AnnotationSessionID = "hypha.amun.ai/session-id"
	AnnotationAppID     = "hypha.amun.ai/app-id"
	AnnotationWorkspace = "hypha.amun.ai/workspace"
	AnnotationClientID  = "hypha.amun.ai/client-id"
	AnnotationCreatedAt = "hypha.amun.ai/created-at"
	AnnotationWorker    = "hypha.amun.ai/worker-type"
	AnnotationImage     = "hypha.amun.ai/image"

	// ContainerName is the pod's only container.
	ContainerName = "main"
	// podUID and podGID run the container (upstream's 1000:1000).
	podUID = 1000
	podGID = 1000
)

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// sessionHash is a short digest of the session id: unique per session
// where the sanitised id is not (two ids differing only in characters that
// sanitising drops).
func sessionHash(sessionID string) string {
	sum := sha256.Sum256([]byte(sessionID))
	return hex.EncodeToString(sum[:])[:10]
}

// PodName is the pod of a session: "hypha-pod-<sanitised id>-<hash>", a
// valid DNS label (at most 63 lower-case letters, digits and dashes,
// starting and ending alphanumeric) whatever the session id holds.
func PodName(sessionID string) string {
	s := notDNS.ReplaceAllString(strings.ToLower(sessionID), "-")
	s = strings.Trim(s, "-")
	const prefix, room = "hypha-pod-", 63 - len("hypha-pod-") - 1 - 10
	if len(s) > room {
		s = strings.TrimRight(s[:room], "-")
	}
	if s == "" {
		return prefix + sessionHash(sessionID)
	}
	return prefix + s + "-" + sessionHash(sessionID)
}

// buildPod is the pod of one session: spec from the manifest, security
// context fixed by the worker, HYPHA_* variables for the app to connect
// back, labels and annotations for re-adoption.
func (w *Worker) buildPod(cfg worker.Config, ps podSpec, now time.Time) *corev1.Pod {
	labels := map[string]string{
		LabelApp:       "hypha",
		LabelComponent: "worker-pod",
		LabelWorker:    w.opts.WorkerID,
		LabelSession:   sessionHash(cfg.ID),
	}
	if len(validation.IsValidLabelValue(cfg.Workspace)) == 0 {
		labels[LabelWorkspace] = cfg.Workspace
	}
	appEnv := cfg.AppEnv()
	// An addition to upstream's variables: where the app's own files are
	// (read with HYPHA_TOKEN as a bearer token), so that an image can
	// fetch its entry point instead of baking it in (examples/hello-k8s).
	if cfg.AppFilesBaseURL != "" {
		appEnv["HYPHA_APP_FILES_BASE_URL"] = cfg.AppFilesBaseURL
	}
	if cfg.EntryPoint != "" {
		appEnv["HYPHA_ENTRY_POINT"] = cfg.EntryPoint
	}
	names := make([]string, 0, len(appEnv))
	for k := range appEnv {
		names = append(names, k)
	}
	sort.Strings(names)
	env := make([]corev1.EnvVar, 0, len(appEnv)+len(ps.Env))
	for _, k := range names {
		env = append(env, corev1.EnvVar{Name: k, Value: appEnv[k]})
	}
	env = append(env, ps.Env...)

	no, yes := false, true
	uid, gid := int64(podUID), int64(podGID)
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	grace := int64(w.opts.StopGrace / time.Second)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PodName(cfg.ID),
			Namespace: w.opts.Namespace,
			Labels:    labels,
			Annotations: map[string]string{
				AnnotationSessionID: cfg.ID,
				AnnotationAppID:     cfg.AppID,
				AnnotationWorkspace: cfg.Workspace,
				AnnotationClientID:  cfg.ClientID,
				AnnotationCreatedAt: now.UTC().Format(time.RFC3339Nano),
				AnnotationWorker:    "k8s",
				AnnotationImage:     ps.Image,
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: ps.RestartPolicy,
			// The app talks to Hypha, not to the cluster: no API token in
			// the pod (upstream mounts the default account's).
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			NodeSelector:                  ps.NodeSelector,
			Tolerations:                   ps.Tolerations,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:      &uid,
				RunAsGroup:     &gid,
				RunAsNonRoot:   &yes,
				FSGroup:        &gid,
				SeccompProfile: seccomp,
			},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           ps.Image,
				Command:         ps.Command,
				Env:             env,
				ImagePullPolicy: ps.PullPolicy,
				Resources:       ps.Resources,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Privileged:               &no,
					RunAsNonRoot:             &yes,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           seccomp,
				},
			}},
		},
	}
}
