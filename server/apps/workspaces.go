package apps

import (
	"sort"
	"strings"
)

// AppCount is the number of apps installed (committed or only staged, or
// being installed) in
// workspace ws. The server asks it before it forgets, deletes or lets
// someone create a workspace: installed apps outlive a workspace's owner
// record, and whoever created the workspace anew would own them.
func (c *Controller) AppCount(ws string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.apps[ws]) + c.stagedOnlyLocked(ws)
	for key := range c.installing {
		if w, _, ok := strings.Cut(key, "/"); ok && w == ws {
			n++
		}
	}
	return n
}

// AppWorkspaces lists the workspaces that hold installed apps (committed or
// staged versions).
func (c *Controller) AppWorkspaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for ws, m := range c.apps {
		if len(m) > 0 {
			seen[ws] = true
		}
	}
	for key := range c.staged {
		ws, _, _ := strings.Cut(key, "/")
		seen[ws] = true
	}
	out := make([]string, 0, len(seen))
	for ws := range seen {
		out = append(out, ws)
	}
	sort.Strings(out)
	return out
}
