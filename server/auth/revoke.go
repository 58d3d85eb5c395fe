package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/atomicfile"
)

// ErrTokenRevoked is returned (wrapped) by Issuer.Parse for a revoked token,
// or for a token derived from a revoked one. It wraps ErrTokenInvalid, so
// callers that refuse invalid tokens refuse revoked ones too.
var ErrTokenRevoked = fmt.Errorf("%w: the token has been revoked", ErrTokenInvalid)

// ErrRevocationsFull is returned by Revocations.Revoke when the list holds
// its maximum number of live entries.
var ErrRevocationsFull = errors.New("the revocation list is full")

// MaxChain bounds how many tokens a token may derive from (generate_token
// called with a token that was itself generated, and so on). Each level adds
// one id to the token's chain claim, so the bound keeps tokens short.
const MaxChain = 8

// TokenID names a token for revocation: the first 16 bytes of the SHA-256 of
// the token string (without any "Bearer " prefix), base64url encoded. It
// reveals nothing of the token and is what the revocation list and the
// chain claim of derived tokens hold.
func TokenID(token string) string {
	t, err := stripBearer(token)
	if err != nil {
		t = token
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(t)))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Revocations is the list of revoked token ids, each kept until a given
// time (after which no token it could refuse is still valid). With a path
// it is persisted as an append-only file of JSON lines, fsynced on every
// revocation and compacted when it is opened and when it has grown to
// twice its live size, so that a restart does not un-revoke a token.
// The zero value is not usable; use NewRevocations or OpenRevocations.
type Revocations struct {
	mu      sync.Mutex
	m       map[string]int64 // token id → unix time until which it is refused
	max     int
	path    string // "" = in memory only
	f       *os.File
	lines   int // lines in the file
	nowFunc func() time.Time
}

// revocationLine is one line of the revocation file.
type revocationLine struct {
	ID    string `json:"id"`
	Until int64  `json:"until"`
}

// NewRevocations returns an in-memory list holding at most max live
// entries (max <= 0: no bound).
func NewRevocations(max int) *Revocations {
	return &Revocations{m: map[string]int64{}, max: max, nowFunc: time.Now}
}

// OpenRevocations loads (or creates) the revocation file at path, drops the
// entries that have lapsed, and rewrites it compacted, atomically, with mode
// 0600 in a 0700 directory.
func OpenRevocations(path string, max int) (*Revocations, error) {
	r := NewRevocations(max)
	r.path = path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("revocations: create %s: %w", filepath.Dir(path), err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("revocations: read %s: %w", path, err)
	}
	now := r.nowFunc().Unix()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l revocationLine
		if err := json.Unmarshal(line, &l); err != nil || l.ID == "" {
			// A torn last line (crash while appending) is dropped; the
			// revocation it held was never acknowledged to its caller.
			continue
		}
		if l.Until > now && l.Until > r.m[l.ID] {
			r.m[l.ID] = l.Until
		}
	}
	if err := r.compactLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

// Close closes the revocation file.
func (r *Revocations) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Len is the number of live entries.
func (r *Revocations) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked()
	return len(r.m)
}

// Revoked reports whether any of ids is revoked.
func (r *Revocations) Revoked(ids ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.nowFunc().Unix()
	for _, id := range ids {
		if until, ok := r.m[id]; ok && until > now {
			return true
		}
	}
	return false
}

// Revoke refuses the token id until the given time and, for a persisted
// list, records it on disk before returning. force skips the bound on the
// number of entries (root's revocations are always recorded).
func (r *Revocations) Revoke(id string, until time.Time, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if until.Unix() <= r.m[id] {
		return nil
	}
	if _, present := r.m[id]; !present && r.max > 0 && len(r.m) >= r.max && !force {
		r.pruneLocked()
		if len(r.m) >= r.max {
			return fmt.Errorf("%w (%d entries: the limit set by --max-revoked-tokens / HYPHA_MAX_REVOKED_TOKENS; entries drop out when the tokens they name expire)", ErrRevocationsFull, r.max)
		}
	}
	if r.path != "" {
		b, _ := json.Marshal(revocationLine{ID: id, Until: until.Unix()})
		if _, err := r.f.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("revocations: write: %w", err)
		}
		if err := r.f.Sync(); err != nil {
			return fmt.Errorf("revocations: sync: %w", err)
		}
		r.lines++
	}
	r.m[id] = until.Unix()
	if r.path != "" && r.lines > 2*len(r.m)+64 {
		r.pruneLocked()
		if err := r.compactLocked(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Revocations) pruneLocked() {
	now := r.nowFunc().Unix()
	for id, until := range r.m {
		if until <= now {
			delete(r.m, id)
		}
	}
}

// compactLocked rewrites the file with the live entries (temp file, fsync,
// rename, fsync of the directory) and reopens it for appending.
func (r *Revocations) compactLocked() error {
	var buf bytes.Buffer
	for id, until := range r.m {
		b, _ := json.Marshal(revocationLine{ID: id, Until: until})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	if err := atomicfile.WriteFile(r.path, buf.Bytes()); err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("revocations: open %s: %w", r.path, err)
	}
	r.f = f
	r.lines = len(r.m)
	return nil
}
