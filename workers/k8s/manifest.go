package k8s

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/hypha-go/hypha/worker"
)

// Limits on what one manifest may ask for, so that a hostile manifest
// cannot make the worker build a huge pod object.
const (
	maxCommandArgs   = 256
	maxArgBytes      = 64 << 10
	maxEnvVars       = 256
	maxEnvValueBytes = 64 << 10
	maxNodeSelector  = 32
	maxTolerations   = 32
	maxImageLen      = 512
	maxTimeout       = 24 * time.Hour
)

// forbiddenKeys are manifest fields that would weaken the pod's isolation
// if a worker honoured them. None is honoured; naming one is refused so
// that an app does not silently run with less than it asked for, and an
// attacker learns at once that the field does not work.
var forbiddenKeys = []string{
	"privileged", "security_context", "securityContext", "host_network", "hostNetwork",
	"host_pid", "hostPID", "host_ipc", "hostIPC", "host_path", "hostPath", "volumes",
	"volume_mounts", "volumeMounts", "service_account", "service_account_name",
	"serviceAccountName", "capabilities", "run_as_user", "runAsUser", "run_as_root",
	"allow_privilege_escalation", "node_name", "nodeName", "init_containers", "containers",
}

// podSpec is a validated manifest: everything the worker takes from it.
type podSpec struct {
	Image         string
	Command       []string
	Env           []corev1.EnvVar // sorted by name, HYPHA_* not among them
	PullPolicy    corev1.PullPolicy
	RestartPolicy corev1.RestartPolicy
	Timeout       time.Duration
	Resources     corev1.ResourceRequirements
	NodeSelector  map[string]string
	Tolerations   []corev1.Toleration
}

// parseManifest validates a k8s-pod manifest with the worker's defaults and
// limits. Every error wraps worker.ErrInvalidConfig and names the field.
func (o Options) parseManifest(m worker.Manifest) (podSpec, error) {
	var ps podSpec
	bad := func(format string, args ...any) (podSpec, error) {
		return podSpec{}, fmt.Errorf("%w: k8s-pod manifest: %s", worker.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, k := range forbiddenKeys {
		if _, ok := m[k]; ok {
			return bad("field %q is not allowed: pods run unprivileged, as a non-root user, with no host access and no service account token", k)
		}
	}
	img, ok := m["image"].(string)
	if !ok || img == "" {
		return bad("required field \"image\" is missing (a container image with a tag, e.g. \"python:3.12-slim\")")
	}
	if err := checkImage(img); err != nil {
		return bad("%v", err)
	}
	ps.Image = img

	cmd, err := stringList(m["command"], "command", maxCommandArgs, maxArgBytes)
	if err != nil {
		return bad("%v", err)
	}
	ps.Command = cmd

	if ps.Env, err = envVars(m["env"]); err != nil {
		return bad("%v", err)
	}

	ps.PullPolicy = o.ImagePullPolicy
	if v, ok := m["image_pull_policy"]; ok && v != nil {
		s, _ := v.(string)
		switch p := corev1.PullPolicy(s); p {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			ps.PullPolicy = p
		default:
			return bad("image_pull_policy %v: want Always, IfNotPresent or Never", v)
		}
	}
	ps.RestartPolicy = corev1.RestartPolicyNever
	if v, ok := m["restart_policy"]; ok && v != nil {
		s, _ := v.(string)
		switch p := corev1.RestartPolicy(s); p {
		case corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure, corev1.RestartPolicyAlways:
			ps.RestartPolicy = p
		default:
			return bad("restart_policy %v: want Never, OnFailure or Always", v)
		}
	}
	ps.Timeout = o.DefaultTimeout
	if v, ok := m["timeout"]; ok && v != nil {
		secs, ok := number(v)
		if !ok || secs <= 0 || secs > maxTimeout.Seconds() {
			return bad("timeout %v: want seconds, more than 0 and at most %d", v, int(maxTimeout.Seconds()))
		}
		ps.Timeout = time.Duration(secs * float64(time.Second))
	}
	if ps.Resources, err = o.resources(m["resources"]); err != nil {
		return bad("%v", err)
	}
	if ps.NodeSelector, err = nodeSelector(m["node_selector"]); err != nil {
		return bad("%v", err)
	}
	if ps.Tolerations, err = tolerations(m["tolerations"]); err != nil {
		return bad("%v", err)
	}
	return ps, nil
}

// checkImage requires a tag or a digest, as upstream does ("python:3.12"):
// an image without one means whatever "latest" is on the day, so two
// sessions of one app could run different code. The tag is looked for after
// the last "/", so that a registry port ("registry:5000/app") does not count.
func checkImage(img string) error {
	if len(img) > maxImageLen {
		return fmt.Errorf("image is %d bytes long, at most %d allowed", len(img), maxImageLen)
	}
	if strings.ContainsFunc(img, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("image %q contains spaces or control characters", img)
	}
	if strings.Contains(img, "@sha256:") {
		return nil
	}
	last := img[strings.LastIndex(img, "/")+1:]
	name, tag, ok := strings.Cut(last, ":")
	if !ok || name == "" || tag == "" {
		return fmt.Errorf("image %q has no tag: give one (e.g. %q) or a digest (@sha256:…)", img, img+":1.0")
	}
	return nil
}

// number reads a wire number as float64.
func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

func stringList(v any, field string, maxItems, maxBytes int) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("%s must be a list of strings, got %T", field, v)
	}
	if len(items) > maxItems {
		return nil, fmt.Errorf("%s has %d items, at most %d allowed", field, len(items), maxItems)
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a string, got %T", field, i, it)
		}
		if len(s) > maxBytes {
			return nil, fmt.Errorf("%s[%d] is %d bytes long, at most %d allowed", field, i, len(s), maxBytes)
		}
		out = append(out, s)
	}
	return out, nil
}

// envVars validates the manifest's env map. HYPHA_* names are the
// worker's: the app connects back with the session's values, which a
// manifest cannot replace.
func envVars(v any) ([]corev1.EnvVar, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("env must be a map of names to values, got %T", v)
	}
	if len(m) > maxEnvVars {
		return nil, fmt.Errorf("env has %d variables, at most %d allowed", len(m), maxEnvVars)
	}
	out := make([]corev1.EnvVar, 0, len(m))
	for k, val := range m {
		if errs := validation.IsEnvVarName(k); len(errs) > 0 {
			return nil, fmt.Errorf("env name %q: %s", k, strings.Join(errs, "; "))
		}
		if strings.HasPrefix(k, "HYPHA_") {
			return nil, fmt.Errorf("env name %q: HYPHA_* variables are set by the worker for the session", k)
		}
		var s string
		switch x := val.(type) {
		case string:
			s = x
		case bool:
			s = fmt.Sprint(x)
		default:
			if _, ok := number(val); !ok {
				return nil, fmt.Errorf("env %q must be a string, number or bool, got %T", k, val)
			}
			s = fmt.Sprint(val)
		}
		if len(s) > maxEnvValueBytes {
			return nil, fmt.Errorf("env %q is %d bytes long, at most %d allowed", k, len(s), maxEnvValueBytes)
		}
		out = append(out, corev1.EnvVar{Name: k, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// resourceNames are the resources a manifest may ask for.
var resourceNames = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// resources parses "resources": {"requests": {"cpu": "250m", "memory":
// "256Mi"}, "limits": {...}} and fills what is missing from the worker's
// defaults: a missing limit is the default limit (raised to the request if
// the request is larger), a missing request the default request (lowered
// to the limit if the limit is smaller). Every limit must stay within the
// worker's maximum for the namespace.
func (o Options) resources(v any) (corev1.ResourceRequirements, error) {
	var rr corev1.ResourceRequirements
	var in map[string]any
	if v != nil {
		var ok bool
		if in, ok = v.(map[string]any); !ok {
			return rr, fmt.Errorf("resources must be a map with \"requests\" and/or \"limits\", got %T", v)
		}
	}
	for k := range in {
		if k != "requests" && k != "limits" {
			return rr, fmt.Errorf("resources.%s: only \"requests\" and \"limits\" are allowed", k)
		}
	}
	req, err := quantities(in["requests"], "resources.requests")
	if err != nil {
		return rr, err
	}
	lim, err := quantities(in["limits"], "resources.limits")
	if err != nil {
		return rr, err
	}
	rr.Requests, rr.Limits = corev1.ResourceList{}, corev1.ResourceList{}
	for _, name := range resourceNames {
		r, hasR := req[name]
		l, hasL := lim[name]
		switch {
		case hasR && hasL:
		case hasR:
			l = o.DefaultLimits[name]
			if r.Cmp(l) > 0 {
				l = r
			}
		case hasL:
			r = o.DefaultRequests[name]
			if r.Cmp(l) > 0 {
				r = l
			}
		default:
			r, l = o.DefaultRequests[name], o.DefaultLimits[name]
		}
		if r.Cmp(l) > 0 {
			return rr, fmt.Errorf("resources.requests.%s %s is more than resources.limits.%s %s", name, r.String(), name, l.String())
		}
		if max, ok := o.MaxLimits[name]; ok && l.Cmp(max) > 0 {
			return rr, fmt.Errorf("resources.limits.%s %s exceeds the maximum %s of this worker's namespace", name, l.String(), max.String())
		}
		rr.Requests[name], rr.Limits[name] = r, l
	}
	return rr, nil
}

func quantities(v any, field string) (map[corev1.ResourceName]resource.Quantity, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a map like {\"cpu\": \"500m\", \"memory\": \"256Mi\"}, got %T", field, v)
	}
	out := map[corev1.ResourceName]resource.Quantity{}
	for k, val := range m {
		name := corev1.ResourceName(k)
		if !slices.Contains(resourceNames, name) {
			return nil, fmt.Errorf("%s.%s: only cpu and memory may be given", field, k)
		}
		var s string
		switch x := val.(type) {
		case string:
			s = x
		default:
			f, ok := number(val)
			if !ok {
				return nil, fmt.Errorf("%s.%s must be a quantity such as \"500m\" or \"1Gi\", got %T", field, k, val)
			}
			s = fmt.Sprint(f)
		}
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return nil, fmt.Errorf("%s.%s %q is not a quantity (e.g. \"500m\", \"2\", \"256Mi\", \"1Gi\"): %v", field, k, s, err)
		}
		if q.Sign() <= 0 {
			return nil, fmt.Errorf("%s.%s %q must be more than zero", field, k, s)
		}
		out[name] = q
	}
	return out, nil
}

func nodeSelector(v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("node_selector must be a map of label names to values, got %T", v)
	}
	if len(m) > maxNodeSelector {
		return nil, fmt.Errorf("node_selector has %d labels, at most %d allowed", len(m), maxNodeSelector)
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("node_selector label %q: %s", k, strings.Join(errs, "; "))
		}
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("node_selector[%q] must be a string, got %T", k, val)
		}
		if errs := validation.IsValidLabelValue(s); len(errs) > 0 {
			return nil, fmt.Errorf("node_selector[%q] = %q: %s", k, s, strings.Join(errs, "; "))
		}
		out[k] = s
	}
	return out, nil
}

func tolerations(v any) ([]corev1.Toleration, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("tolerations must be a list of {key, operator, value, effect, toleration_seconds}, got %T", v)
	}
	if len(items) > maxTolerations {
		return nil, fmt.Errorf("tolerations has %d items, at most %d allowed", len(items), maxTolerations)
	}
	var out []corev1.Toleration
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("tolerations[%d] must be a map, got %T", i, it)
		}
		var t corev1.Toleration
		for k, val := range m {
			s, isStr := val.(string)
			switch k {
			case "key", "operator", "value", "effect":
				if !isStr && val != nil {
					return nil, fmt.Errorf("tolerations[%d].%s must be a string, got %T", i, k, val)
				}
			case "toleration_seconds", "tolerationSeconds":
				f, ok := number(val)
				if !ok || f < 0 || f != math.Trunc(f) || f > maxTimeout.Seconds() {
					return nil, fmt.Errorf("tolerations[%d].%s %v: want whole seconds from 0 to %d", i, k, val, int(maxTimeout.Seconds()))
				}
				secs := int64(f)
				t.TolerationSeconds = &secs
				continue
			default:
				return nil, fmt.Errorf("tolerations[%d].%s: unknown field (want key, operator, value, effect, toleration_seconds)", i, k)
			}
			switch k {
			case "key":
				t.Key = s
			case "operator":
				t.Operator = corev1.TolerationOperator(s)
			case "value":
				t.Value = s
			case "effect":
				t.Effect = corev1.TaintEffect(s)
			}
		}
		if t.Key != "" {
			if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
				return nil, fmt.Errorf("tolerations[%d].key %q: %s", i, t.Key, strings.Join(errs, "; "))
			}
		}
		switch t.Operator {
		case "", corev1.TolerationOpEqual:
			if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
				return nil, fmt.Errorf("tolerations[%d].value %q: %s", i, t.Value, strings.Join(errs, "; "))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				return nil, fmt.Errorf("tolerations[%d]: operator Exists takes no value", i)
			}
		default:
			return nil, fmt.Errorf("tolerations[%d].operator %q: want Equal or Exists", i, t.Operator)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			return nil, fmt.Errorf("tolerations[%d]: an empty key needs operator Exists", i)
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("tolerations[%d].effect %q: want NoSchedule, PreferNoSchedule or NoExecute", i, t.Effect)
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			return nil, fmt.Errorf("tolerations[%d]: toleration_seconds needs effect NoExecute", i)
		}
		out = append(out, t)
	}
	return out, nil
}
