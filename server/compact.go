package server

import "github.com/hypha-go/hypha/internal/wire"

// compactBuiltIn stores a client's built-in service description compactly:
// its functions (maps such as {"_rtype": "method", ...}, and namespaces of
// them) and config.created_by are kept as their encoded msgpack bytes
// (wire.Raw) instead of decoded maps. Every connection registers one, so
// with many idle connections these maps were the largest part of the
// server's memory per connection. The server never looks inside them: they
// are only sent back to clients, verbatim in msgpack frames, decoded again
// for JSON (jsonable in http.go). Other services keep their maps, which
// the apps controller reads from service_added events.
func compactBuiltIn(info map[string]any) {
	for k, v := range info {
		switch k {
		case "id", "name", "type", "description", "docs", "app_id", "config":
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
			if b, err := wire.Encode(v); err == nil {
				info[k] = wire.Raw(b)
			}
		}
	}
	if cfg, ok := info["config"].(map[string]any); ok {
		if by, ok := cfg["created_by"].(map[string]any); ok {
			if b, err := wire.Encode(by); err == nil {
				cfg["created_by"] = wire.Raw(b)
			}
		}
	}
}
