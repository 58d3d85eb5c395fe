package localproc

import (
	"os"
	"slices"
	"strings"

	"github.com/hypha-go/hypha/worker"
)

// AppEnv builds a session program's whole environment, the same way for
// every local worker: base (the worker's own settings: PATH, TERM,
// PYTHONUNBUFFERED, …), HOME and LANG from the worker's environment (HOME
// is dir when the session runs as a user of its own, whose home the
// worker's is not), then the manifest's env, then config.env (the server's
// additional_kwargs), then the HYPHA_* connection variables, which always
// win. Nothing else is inherited. It also returns the env keys it ignored,
// sorted: values that are not strings, names that are empty or hold "=" or
// NUL, values that hold NUL.
func AppEnv(base map[string]string, cfg worker.Config, u User, dir string) (env, dropped []string) {
	m := make(map[string]string, len(base)+8)
	for _, k := range []string{"HOME", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	if u.Switch {
		m["HOME"] = dir
	}
	for k, v := range base {
		m[k] = v
	}
	merge := func(src string, v any) {
		em, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				dropped = append(dropped, src)
			}
			return
		}
		for k, val := range em {
			s, ok := val.(string)
			if !ok || k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(s, 0) {
				dropped = append(dropped, src+"."+k)
				continue
			}
			m[k] = s
		}
	}
	merge("manifest.env", cfg.Manifest["env"])
	merge("config.env", cfg.Extra["env"])
	for k, v := range cfg.AppEnv() {
		m[k] = v
	}
	env = make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	slices.Sort(dropped)
	return env, dropped
}
