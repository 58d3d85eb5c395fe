package auth

import "github.com/hypha-go/hypha/internal/idgen"

// ReadableID returns a random human-readable id made of lowercase words
// and digits joined by '-', e.g. "brave-otter-54417286". It is used for
// anonymous user ids and for the ids of child-token users.
func ReadableID() string {
	return idgen.ReadableDigits(8)
}
