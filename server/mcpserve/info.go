package mcpserve

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ServeInfo serves GET /{workspace}/mcp/{service_id}: what an MCP client
// would find at the endpoint (as upstream's info page): the service, the
// endpoint's path and the tools, with the same rules as the endpoint.
func (h *Handler) ServeInfo(w http.ResponseWriter, r *http.Request) {
	ws, sid := r.PathValue("workspace"), r.PathValue("service_id")
	c, err := h.cfg.Backend.Caller(r.Header, r.RemoteAddr)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": err.Error()})
		return
	}
	svc, release, err := h.cfg.Backend.Service(r.Context(), c, ws, sid, r.URL.Query().Get("_mode"))
	if err != nil {
		code := http.StatusBadGateway
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		writeJSON(w, code, map[string]any{"error": err.Error()})
		return
	}
	defer release()
	tools := []any{}
	for _, t := range collectTools(svc) {
		schema, desc := inputSchema(t.fn)
		tools = append(tools, map[string]any{"name": t.name, "description": desc, "inputSchema": schema})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"service":      map[string]any{"id": svc["id"], "name": svc["name"], "type": svc["type"], "description": svc["description"]},
		"endpoints":    map[string]any{"streamable_http": "/" + ws + "/mcp/" + sid + "/mcp"},
		"capabilities": map[string]any{"tools": tools},
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"the answer is not JSON-serialisable"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
