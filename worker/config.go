package worker

import (
	"maps"
	"math"
	"time"
)

// Config is what start() receives: every field the seed document lists plus
// what the current server adds (app_files_base_url, disable_ssl), see
// worker-contract §1.3. Unknown keys are kept in Extra because the server
// merges startup_config.additional_kwargs into the same map (e.g. "env"),
// and Python's WorkerConfig silently dropping them is a known upstream loss.
type Config struct {
	// ID is the session id, "<workspace>/<client_id>". The server chooses it
	// before calling start and ignores what start returns.
	ID string
	// AppID is the app alias (without "<workspace>/").
	AppID     string
	Workspace string
	// ClientID is the id the app's client must connect with
	// ("_rapp_<id>__rlb" from the server).
	ClientID string
	// ServerURL is the URL the app must connect to; which base URL the server
	// picks depends on the use_local_url of the worker's registration
	// (hyphaworker.Options.UseLocalURL).
	ServerURL string
	// AppFilesBaseURL is "<server_url>/<workspace>/artifacts/<app_id>/files"
	// (".../stage/files" for a session of the app's staged version).
	AppFilesBaseURL string
	// Token authenticates the app's client; it is scoped to ClientID.
	Token      string
	EntryPoint string
	// ArtifactID is "<workspace>/<alias>", used to read the app's files.
	ArtifactID string
	// Manifest is the application manifest with the "_rtype" marker of the
	// server's pydantic codec removed; unknown fields are kept.
	Manifest Manifest
	// Timeout is the startup timeout. Zero means the caller sent none. The
	// server sends float seconds; fractions are kept (Python's WorkerConfig
	// rejects them, a known upstream bug).
	Timeout time.Duration
	// DisableSSL mirrors the server's --disable-ssl flag: do not verify TLS
	// when fetching app files.
	DisableSSL bool

	// ProgressCallback is the raw progress_callback value as decoded from the
	// wire (a remote function object from the rpc package), or nil.
	// ConfigFromMap only stores it; it never calls it.
	ProgressCallback any
	// ProgressFunc calls ProgressCallback. The adapter sets it after
	// ConfigFromMap, because only the adapter knows how to call a remote
	// function. Workers should not call it directly but go through
	// NewReporter, which never blocks the worker.
	ProgressFunc ProgressFunc

	// Extra holds every key that is not a field above, as decoded.
	Extra map[string]any
}

// Config keys as they appear on the wire.
const (
	keyID               = "id"
	keyAppID            = "app_id"
	keyWorkspace        = "workspace"
	keyClientID         = "client_id"
	keyServerURL        = "server_url"
	keyAppFilesBaseURL  = "app_files_base_url"
	keyToken            = "token"
	keyEntryPoint       = "entry_point"
	keyArtifactID       = "artifact_id"
	keyManifest         = "manifest"
	keyTimeout          = "timeout"
	keyProgressCallback = "progress_callback"
	keyDisableSSL       = "disable_ssl"
	// rtypeKey marks encoded rich values; the server's "pydantic-model" codec
	// leaves it in the manifest map.
	rtypeKey = "_rtype"
)

// ConfigFromMap converts the decoded config map of a start() call.
//
// Strings may be nil (Python's None) and then stay empty; timeout may be an
// integer, a float or nil; manifest must be a map or nil. A value of the
// wrong kind is an ErrInvalidConfig error naming the key. id is required;
// when it is absent but workspace and client_id are present it is derived as
// "<workspace>/<client_id>", which is how the server builds it. The input map
// is not modified.
func ConfigFromMap(m map[string]any) (Config, error) {
	var c Config
	strs := []struct {
		key string
		dst *string
	}{
		{keyID, &c.ID},
		{keyAppID, &c.AppID},
		{keyWorkspace, &c.Workspace},
		{keyClientID, &c.ClientID},
		{keyServerURL, &c.ServerURL},
		{keyAppFilesBaseURL, &c.AppFilesBaseURL},
		{keyToken, &c.Token},
		{keyEntryPoint, &c.EntryPoint},
		{keyArtifactID, &c.ArtifactID},
	}
	known := make(map[string]bool, len(strs)+4)
	for _, f := range strs {
		known[f.key] = true
		s, ok := wireString(m[f.key])
		if !ok {
			return Config{}, badField(f.key, "string", m[f.key])
		}
		*f.dst = s
	}

	known[keyManifest] = true
	man, err := manifestFromValue(keyManifest, m[keyManifest])
	if err != nil {
		return Config{}, err
	}
	c.Manifest = man

	known[keyTimeout] = true
	secs, ok := wireFloat(m[keyTimeout])
	if !ok || secs < 0 || secs > math.MaxInt64/float64(time.Second) {
		return Config{}, badField(keyTimeout, "non-negative seconds", m[keyTimeout])
	}
	c.Timeout = time.Duration(secs * float64(time.Second))

	known[keyDisableSSL] = true
	if c.DisableSSL, ok = wireBool(m[keyDisableSSL]); !ok {
		return Config{}, badField(keyDisableSSL, "bool", m[keyDisableSSL])
	}

	known[keyProgressCallback] = true
	c.ProgressCallback = m[keyProgressCallback]

	for k, v := range m {
		if known[k] {
			continue
		}
		if c.Extra == nil {
			c.Extra = make(map[string]any)
		}
		c.Extra[k] = v
	}

	if c.ID == "" && c.Workspace != "" && c.ClientID != "" {
		c.ID = c.Workspace + "/" + c.ClientID
	}
	if c.ID == "" {
		return Config{}, badField(keyID, "a session id", m[keyID])
	}
	return c, nil
}

// ToMap renders the config in wire shape: the inverse of ConfigFromMap
// (ProgressFunc is not representable and is left out; the raw
// ProgressCallback is included when set). Optional strings that are empty
// become nil, as Python sends them; the manifest carries the "_rtype":
// "pydantic-model" marker of the upstream server. This is what the apps
// controller sends to every worker (through hyphaworker.Remote).
func (c Config) ToMap() map[string]any {
	m := make(map[string]any, 13+len(c.Extra))
	maps.Copy(m, c.Extra)
	m[keyID] = c.ID
	m[keyAppID] = c.AppID
	m[keyWorkspace] = c.Workspace
	m[keyClientID] = c.ClientID
	m[keyServerURL] = c.ServerURL
	m[keyAppFilesBaseURL] = nilIfEmpty(c.AppFilesBaseURL)
	m[keyToken] = nilIfEmpty(c.Token)
	m[keyEntryPoint] = nilIfEmpty(c.EntryPoint)
	m[keyArtifactID] = c.ArtifactID
	m[keyManifest] = nil
	if c.Manifest != nil {
		// Marked as the upstream server's pydantic codec marks it, which
		// Python workers expect; ConfigFromMap drops the marker again.
		man := make(map[string]any, len(c.Manifest)+1)
		maps.Copy(man, c.Manifest)
		man[rtypeKey] = "pydantic-model"
		m[keyManifest] = man
	}
	if c.Timeout > 0 {
		m[keyTimeout] = c.Timeout.Seconds()
	} else {
		m[keyTimeout] = nil
	}
	m[keyDisableSSL] = c.DisableSSL
	if c.ProgressCallback != nil {
		m[keyProgressCallback] = c.ProgressCallback
	}
	return m
}

// AppEnv returns the HYPHA_* environment variables an app process reads to
// connect back to the server (hypha_rpc.api.export and friends use them;
// worker-contract §1.10).
func (c Config) AppEnv() map[string]string {
	return map[string]string{
		"HYPHA_SERVER_URL": c.ServerURL,
		"HYPHA_WORKSPACE":  c.Workspace,
		"HYPHA_CLIENT_ID":  c.ClientID,
		"HYPHA_TOKEN":      c.Token,
		"HYPHA_APP_ID":     c.AppID,
	}
}

// Manifest is an application manifest as decoded from the wire. It stays a
// map because it is open-ended: every worker reads its own fields
// (dependencies, image, startup_command, …) and unknown fields must survive
// (they become SessionInfo.Metadata). Treat it as read-only once shared.
type Manifest map[string]any

// manifestFromValue copies a decoded manifest and drops the top-level
// "_rtype" marker. Only the top level carries it: the server's codec dumps
// the whole pydantic model into one plain map.
func manifestFromValue(field string, v any) (Manifest, error) {
	raw, ok := wireMap(v)
	if !ok {
		return nil, badField(field, "map", v)
	}
	if raw == nil {
		return nil, nil
	}
	m := make(Manifest, len(raw))
	for k, v := range raw {
		if k != rtypeKey {
			m[k] = v
		}
	}
	return m, nil
}

// ToMap returns the manifest as a plain map (nil stays nil).
func (m Manifest) ToMap() map[string]any {
	if m == nil {
		return nil
	}
	return map[string]any(m)
}

// String returns the field as a string, or "" when it is absent or not a
// string.
func (m Manifest) String(key string) string {
	s, _ := m[key].(string)
	return s
}

// Type is the app type the server routes on (matched against
// Properties.SupportedTypes).
func (m Manifest) Type() string { return m.String("type") }

// Name is the app's display name.
func (m Manifest) Name() string { return m.String("name") }

// EntryPoint is the main file inside the app's artifact.
func (m Manifest) EntryPoint() string { return m.String("entry_point") }
