// Package auth implements the identity side of the Hypha server: HS256 JWT
// tokens, permission scopes, the UserInfo object carried in every routed
// message, the configured root token and anonymous users.
//
// The package is pure: it does no networking and keeps no global state.
package auth

import "fmt"

// Permission is a workspace permission level. Levels are ordered, so a
// stronger permission compares greater: Admin > ReadWrite > Read > None.
type Permission int

// Permission levels.
const (
	None Permission = iota
	Read
	ReadWrite
	Admin
)

// String returns the scope letter used on the wire and in scope strings:
// "r", "rw" or "a". None formats as the empty string.
func (p Permission) String() string {
	switch p {
	case Read:
		return "r"
	case ReadWrite:
		return "rw"
	case Admin:
		return "a"
	case None:
		return ""
	}
	return fmt.Sprintf("Permission(%d)", int(p))
}

// Name returns the long name of the permission ("read", "read_write",
// "admin"), as accepted by generate_token's permission option.
func (p Permission) Name() string {
	switch p {
	case Read:
		return "read"
	case ReadWrite:
		return "read_write"
	case Admin:
		return "admin"
	case None:
		return ""
	}
	return fmt.Sprintf("Permission(%d)", int(p))
}

// Valid reports whether p is one of Read, ReadWrite or Admin.
func (p Permission) Valid() bool { return p >= Read && p <= Admin }

// ParsePermission accepts the scope letters "r", "rw", "a" and the long
// names "read", "read_write", "admin".
func ParsePermission(s string) (Permission, error) {
	switch s {
	case "r", "read":
		return Read, nil
	case "rw", "read_write":
		return ReadWrite, nil
	case "a", "admin":
		return Admin, nil
	}
	return None, fmt.Errorf("invalid permission %q (expected r, rw, a, read, read_write or admin)", s)
}
