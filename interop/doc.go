// Package interop holds the interoperability tests: the real hypha-rpc
// clients (the npm JavaScript client in interop/js, the upstream Python
// client from the peers scripts, shared/peers beside the repository) against
// the embedded server, and this module's Go client against the real upstream
// Python server.
//
//	go test ./interop/...                 JS client <-> embedded server (needs node; runs npm ci when needed)
//	HYPHA_PEERS=1 go test ./interop/...   + Python client <-> embedded server, Go client <-> upstream server
//
// See docs/compatibility.md for what is covered and the results.
package interop
