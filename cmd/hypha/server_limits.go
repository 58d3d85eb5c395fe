package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/server/mcpserve"
)

// addLimitFlags binds the server's resource limits and the apps
// controller's (docs/security.md lists them) to flags whose defaults come
// from HYPHA_* environment variables.
func addLimitFlags(fs *pflag.FlagSet, cfg *server.Config, al *apps.Limits) {
	// Connections and websocket frames.
	envDurationVar(fs, &cfg.AuthTimeout, "ws-auth-timeout", "HYPHA_WS_AUTH_TIMEOUT", 5*time.Second,
		"time a new websocket has to send its first (authentication) message (HYPHA_WS_AUTH_TIMEOUT)")
	envInt64Var(fs, &cfg.MaxMessageSize, "ws-max-message-size", "HYPHA_WS_MAX_MESSAGE_SIZE", 16<<20,
		"largest websocket frame in bytes; larger messages travel in chunks (HYPHA_WS_MAX_MESSAGE_SIZE)")
	envIntVar(fs, &cfg.MaxMalformedFrames, "ws-max-malformed-frames", "HYPHA_WS_MAX_MALFORMED_FRAMES", 100,
		"close a connection after this many malformed frames, negative for never (HYPHA_WS_MAX_MALFORMED_FRAMES)")
	envIntVar(fs, &cfg.PollLoops, "poll-loops", "HYPHA_POLL_LOOPS", 0,
		"epoll loops reading the websocket connections (Linux): 0 for one per 4 CPUs (at least 1, at most 8), negative for a goroutine per connection (HYPHA_POLL_LOOPS)")
	envIntVar(fs, &cfg.MaxPendingConnections, "max-pending-connections", "HYPHA_MAX_PENDING_CONNECTIONS", 1000,
		"websocket connections waiting for authentication at once (HYPHA_MAX_PENDING_CONNECTIONS)")
	envIntVar(fs, &cfg.MaxServicesPerClient, "max-services-per-client", "HYPHA_MAX_SERVICES_PER_CLIENT", 1000,
		"services one client may register (HYPHA_MAX_SERVICES_PER_CLIENT)")
	envIntVar(fs, &cfg.MaxServiceInfoBytes, "max-service-info-bytes", "HYPHA_MAX_SERVICE_INFO_BYTES", 256<<10,
		"size of one registered service's description in bytes (HYPHA_MAX_SERVICE_INFO_BYTES)")
	envIntVar(fs, &cfg.MaxSubscriptionsPerClient, "max-subscriptions-per-client", "HYPHA_MAX_SUBSCRIPTIONS_PER_CLIENT", 256,
		"event types one client may subscribe to (HYPHA_MAX_SUBSCRIPTIONS_PER_CLIENT)")

	// Chunked messages (message_cache), per sending client.
	envIntVar(fs, &cfg.Chunks.PerSenderMessages, "max-chunked-messages-per-client",
		"HYPHA_MAX_CHUNKED_MESSAGES_PER_CLIENT", rpc.DefaultChunkedMessagesPerSender,
		"chunked messages one client may have in flight (HYPHA_MAX_CHUNKED_MESSAGES_PER_CLIENT)")
	envInt64Var(fs, &cfg.Chunks.PerSenderBytes, "max-chunked-bytes-per-client",
		"HYPHA_MAX_CHUNKED_BYTES_PER_CLIENT", rpc.DefaultChunkedBytesPerSender,
		"bytes of chunked messages one client may have in flight, and so the largest message (HYPHA_MAX_CHUNKED_BYTES_PER_CLIENT)")
	envInt64Var(fs, &cfg.Chunks.TotalBytes, "max-chunked-bytes", "HYPHA_MAX_CHUNKED_BYTES", rpc.DefaultChunkedBytesTotal,
		"bytes of chunked messages in flight from all clients; at least twice the per-client limit (HYPHA_MAX_CHUNKED_BYTES)")
	envDurationVar(fs, &cfg.Chunks.Idle, "chunked-idle-timeout", "HYPHA_CHUNKED_IDLE_TIMEOUT", rpc.DefaultChunkedIdle,
		"drop a chunked message that received nothing for this long (HYPHA_CHUNKED_IDLE_TIMEOUT)")

	// HTTP.
	envDurationVar(fs, &cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", "HYPHA_HTTP_READ_HEADER_TIMEOUT", 10*time.Second,
		"time to read a request's headers (HYPHA_HTTP_READ_HEADER_TIMEOUT)")
	envDurationVar(fs, &cfg.HTTPReadTimeout, "http-read-timeout", "HYPHA_HTTP_READ_TIMEOUT", 60*time.Second,
		"time to read a whole request, body included (HYPHA_HTTP_READ_TIMEOUT)")
	envDurationVar(fs, &cfg.HTTPIdleTimeout, "http-idle-timeout", "HYPHA_HTTP_IDLE_TIMEOUT", 120*time.Second,
		"close kept-alive HTTP connections idle this long (HYPHA_HTTP_IDLE_TIMEOUT)")
	envInt64Var(fs, &cfg.MaxHTTPBodyBytes, "max-http-body-bytes", "HYPHA_MAX_HTTP_BODY_BYTES", 16<<20,
		"largest HTTP request body in bytes (HYPHA_MAX_HTTP_BODY_BYTES)")
	envIntVar(fs, &cfg.MaxMCPSessionsPerCaller, "max-mcp-sessions-per-caller", "HYPHA_MAX_MCP_SESSIONS_PER_CALLER", mcpserve.DefaultMaxSessionsPerCaller,
		"open MCP sessions per caller on /{workspace}/mcp/{service_id}/mcp; anonymous callers per address (HYPHA_MAX_MCP_SESSIONS_PER_CALLER)")
	envDurationVar(fs, &cfg.MCPSessionIdleTimeout, "mcp-session-idle-timeout", "HYPHA_MCP_SESSION_IDLE_TIMEOUT", mcpserve.DefaultIdleTimeout,
		"close an MCP session without a request for this long (HYPHA_MCP_SESSION_IDLE_TIMEOUT)")
	envIntVar(fs, &cfg.MaxRPCStreamsPerCaller, "max-rpc-streams-per-caller", "HYPHA_MAX_RPC_STREAMS_PER_CALLER", server.DefaultMaxRPCStreamsPerCaller,
		"open HTTP RPC streams (GET /rpc) per caller; anonymous callers per address (HYPHA_MAX_RPC_STREAMS_PER_CALLER)")
	envIntVar(fs, &cfg.MaxAppRequestsPerCaller, "max-app-requests-per-caller", "HYPHA_MAX_APP_REQUESTS_PER_CALLER", server.DefaultMaxAppRequestsPerCaller,
		"requests in flight per caller on the app routes /{workspace}/apps/{service_id}/...; anonymous callers per address (HYPHA_MAX_APP_REQUESTS_PER_CALLER)")
	envDurationVar(fs, &cfg.AppResponseTimeout, "app-response-timeout", "HYPHA_APP_RESPONSE_TIMEOUT", server.DefaultAppResponseTimeout,
		"longest silence of an app service: before its response starts (then 504) and between its events (HYPHA_APP_RESPONSE_TIMEOUT)")

	// The login service (public/hypha-login) and its page.
	envDurationVar(fs, &cfg.Login.SessionTTL, "login-session-ttl", "HYPHA_LOGIN_SESSION_TTL", server.DefaultLoginSessionTTL,
		"life of a pending login session, and the longest wait of one check (HYPHA_LOGIN_SESSION_TTL)")
	envIntVar(fs, &cfg.Login.MaxSessionsPerCaller, "max-login-sessions-per-caller", "HYPHA_MAX_LOGIN_SESSIONS_PER_CALLER", server.DefaultMaxLoginSessionsPerCaller,
		"pending login sessions one caller may start (HYPHA_MAX_LOGIN_SESSIONS_PER_CALLER)")
	envIntVar(fs, &cfg.Login.MaxSessions, "max-login-sessions", "HYPHA_MAX_LOGIN_SESSIONS", server.DefaultMaxLoginSessions,
		"pending login sessions on the server (HYPHA_MAX_LOGIN_SESSIONS)")
	envIntVar(fs, &cfg.Login.MaxPasswordFailures, "max-login-failures", "HYPHA_MAX_LOGIN_FAILURES", server.DefaultMaxPasswordFailures,
		"failed logins on the login page per network address and per username before it refuses more (HYPHA_MAX_LOGIN_FAILURES)")
	envDurationVar(fs, &cfg.Login.PasswordFailureWindow, "login-failure-window", "HYPHA_LOGIN_FAILURE_WINDOW", server.DefaultPasswordFailureWindow,
		"window of --max-login-failures: one failure is forgiven every window/max (HYPHA_LOGIN_FAILURE_WINDOW)")

	// Manager state per workspace.
	envIntVar(fs, &cfg.MaxItemsPerWorkspace, "max-items-per-workspace", "HYPHA_MAX_ITEMS_PER_WORKSPACE", 1000,
		"env variables, service types, events, revocations and bookmarks kept per workspace (HYPHA_MAX_ITEMS_PER_WORKSPACE)")
	envIntVar(fs, &cfg.MaxItemBytes, "max-item-bytes", "HYPHA_MAX_ITEM_BYTES", 64<<10,
		"largest env variable, service type, event or bookmark in bytes (HYPHA_MAX_ITEM_BYTES)")

	// App installation.
	envIntVar(fs, &al.MaxFiles, "max-install-files", "HYPHA_MAX_INSTALL_FILES", apps.DefaultMaxFiles,
		"files of one app (HYPHA_MAX_INSTALL_FILES)")
	envInt64Var(fs, &al.MaxTotalBytes, "max-install-bytes", "HYPHA_MAX_INSTALL_BYTES", apps.DefaultMaxTotalBytes,
		"bytes of all files of one app (HYPHA_MAX_INSTALL_BYTES)")
	envInt64Var(fs, &al.MaxManifestBytes, "max-manifest-bytes", "HYPHA_MAX_MANIFEST_BYTES", apps.DefaultMaxManifestBytes,
		"size of one app's manifest in bytes (HYPHA_MAX_MANIFEST_BYTES)")
	envIntVar(fs, &al.MaxAppsPerWorkspace, "max-apps-per-workspace", "HYPHA_MAX_APPS_PER_WORKSPACE", apps.DefaultMaxAppsPerWorkspace,
		"apps installed in one workspace (HYPHA_MAX_APPS_PER_WORKSPACE)")
	envIntVar(fs, &al.MaxSessionsPerWorkspace, "max-sessions-per-workspace", "HYPHA_MAX_SESSIONS_PER_WORKSPACE", apps.DefaultMaxSessionsPerWorkspace,
		"app sessions running at once in one workspace (HYPHA_MAX_SESSIONS_PER_WORKSPACE)")
	envDurationVar(fs, &al.EndedSessionTTL, "ended-session-ttl", "HYPHA_ENDED_SESSION_TTL", apps.DefaultEndedSessionTTL,
		"how long an ended app session's record and last logs stay readable (HYPHA_ENDED_SESSION_TTL)")
	envDurationVar(fs, &al.LostSessionTTL, "lost-session-ttl", "HYPHA_LOST_SESSION_TTL", apps.DefaultLostSessionTTL,
		"how long a session whose worker went away is kept, unlisted, for the worker's return (HYPHA_LOST_SESSION_TTL)")
}
