package auth

// The server's own user accounts: users an admin creates with a password
// (`hypha users add`), who log in on the login page
// (/public/apps/hypha-login/). The accounts live in one JSON file in the
// data directory, written whole (internal/atomicfile) under an advisory lock,
// so that the CLI may add a user while the server runs: the server reads the
// file again when it changes.
//
// Passwords are hashed with bcrypt (golang.org/x/crypto/bcrypt): a salted,
// deliberately slow hash with a tunable cost, maintained by the Go team. A
// fast hash (upstream's local accounts use salted SHA-256) lets whoever
// reads the file try billions of guesses a second; bcrypt at cost 12 allows
// a few per second per core.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hypha-go/hypha/internal/atomicfile"
	"golang.org/x/crypto/bcrypt"
)

// Sentinel errors of the user store.
var (
	// ErrBadCredentials is returned by Users.Verify for an unknown user or a
	// wrong password alike, so that the answer does not tell which.
	ErrBadCredentials = errors.New("invalid username or password")
	ErrUserExists     = errors.New("user already exists")
	ErrUserNotFound   = errors.New("user not found")
	ErrBadUsername    = errors.New("invalid username")
	ErrBadPassword    = errors.New("invalid password")
)

// PasswordCost is the bcrypt cost of new password hashes (2^12 rounds, about
// a quarter of a second on one core).
const PasswordCost = 12

// Password length bounds: bcrypt reads at most 72 bytes, and a longer
// password would be silently cut, so it is refused instead.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// usernameRE: a lowercase letter, then lowercase letters, digits and '_'.
// No '-': the server's generated user ids (readable ids, "anonymouz-…")
// always contain one, so a chosen name can never equal a generated id and
// inherit its workspace.
var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,31}$`)

var roleRE = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,64}$`)

// CheckUsername reports whether name may name a user account.
func CheckUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return fmt.Errorf("%w %q: 2 to 32 characters, a lowercase letter first, then lowercase letters, digits or '_'", ErrBadUsername, name)
	}
	if name == RootUserID {
		return fmt.Errorf("%w %q: reserved for the root token", ErrBadUsername, name)
	}
	return nil
}

// CheckPassword reports whether pw is acceptable as a new password.
func CheckPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return fmt.Errorf("%w: at least %d characters", ErrBadPassword, MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("%w: at most %d bytes (bcrypt ignores the rest)", ErrBadPassword, MaxPasswordLen)
	}
	return nil
}

// Account is one stored user.
type Account struct {
	Name         string   `json:"name"`
	PasswordHash string   `json:"password_hash"`
	Email        string   `json:"email,omitempty"`
	Roles        []string `json:"roles,omitempty"`
	CreatedAt    int64    `json:"created_at"`
}

// User is the identity an account logs in as: its id is the account name,
// so its own workspace is ws-user-<name>.
func (a *Account) User() *UserInfo {
	return &UserInfo{ID: a.Name, Email: a.Email, Roles: slices.Clone(a.Roles)}
}

type usersFile struct {
	Users []*Account `json:"users"`
}

// Users is the account file at Path. The zero value is not usable; use
// OpenUsers.
type Users struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	byName  map[string]*Account
	// dummy is a hash compared against when the user does not exist, so
	// that an unknown name costs the same time as a wrong password.
	dummy []byte
}

// UsersFile is the account file's path inside a data directory.
func UsersFile(dataDir string) string { return filepath.Join(dataDir, "users.json") }

// OpenUsers returns the account store at path. A missing file is an empty
// store; it is created by the first Add.
func OpenUsers(path string) *Users {
	return &Users{path: path}
}

// load reads the file again when its size or modification time changed.
func (u *Users) load() error {
	st, err := os.Stat(u.path)
	if errors.Is(err, os.ErrNotExist) {
		u.byName, u.modTime, u.size = map[string]*Account{}, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if u.byName != nil && st.ModTime().Equal(u.modTime) && st.Size() == u.size {
		return nil
	}
	f, err := readUsers(u.path)
	if err != nil {
		return err
	}
	m := make(map[string]*Account, len(f.Users))
	for _, a := range f.Users {
		m[a.Name] = a
	}
	u.byName, u.modTime, u.size = m, st.ModTime(), st.Size()
	return nil
}

func readUsers(path string) (*usersFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &usersFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var f usersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("users: %s is not a valid account file: %w", path, err)
	}
	return &f, nil
}

// Len is the number of accounts (0 when the file cannot be read).
func (u *Users) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.load() != nil {
		return 0
	}
	return len(u.byName)
}

// Verify checks name and password and returns the account's identity. Any
// failure of the pair is ErrBadCredentials. The bcrypt comparison is
// expensive on purpose: callers bound how often it runs (see server/login.go).
func (u *Users) Verify(ctx context.Context, name, password string) (*UserInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u.mu.Lock()
	err := u.load()
	a := u.byName[name]
	if u.dummy == nil {
		u.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), PasswordCost)
	}
	dummy := u.dummy
	u.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(password) > MaxPasswordLen {
		return nil, ErrBadCredentials
	}
	if a == nil {
		_ = bcrypt.CompareHashAndPassword(dummy, []byte(password))
		return nil, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) != nil {
		return nil, ErrBadCredentials
	}
	return a.User(), nil
}

// Get returns a copy of the account name.
func (u *Users) Get(name string) (*Account, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.load(); err != nil {
		return nil, err
	}
	a, ok := u.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, name)
	}
	c := *a
	c.Roles = slices.Clone(a.Roles)
	return &c, nil
}

// List returns the accounts sorted by name, without their hashes.
func (u *Users) List() ([]Account, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.load(); err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(u.byName))
	for _, a := range u.byName {
		c := *a
		c.PasswordHash = ""
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Add creates an account. The file is rewritten whole under an exclusive
// lock on path+".lock", so concurrent Adds (two CLI runs) do not lose one.
func (u *Users) Add(name, password, email string, roles []string) error {
	if err := CheckUsername(name); err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	for _, r := range roles {
		// "anonymous" would make the account's tokens parse as an
		// anonymous user's.
		if !roleRE.MatchString(r) || r == RoleAnonymous {
			return fmt.Errorf("users: invalid role %q: 1 to 64 letters, digits, '_', '-' or ':', and not %q", r, RoleAnonymous)
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return fmt.Errorf("users: hash password: %w", err)
	}
	return u.update(func(f *usersFile) error {
		for _, a := range f.Users {
			if a.Name == name {
				return fmt.Errorf("%w: %s", ErrUserExists, name)
			}
		}
		f.Users = append(f.Users, &Account{Name: name, PasswordHash: string(hash), Email: email,
			Roles: roles, CreatedAt: time.Now().Unix()})
		return nil
	})
}

// SetPassword replaces the password of an existing account.
func (u *Users) SetPassword(name, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return fmt.Errorf("users: hash password: %w", err)
	}
	return u.update(func(f *usersFile) error {
		for _, a := range f.Users {
			if a.Name == name {
				a.PasswordHash = string(hash)
				return nil
			}
		}
		return fmt.Errorf("%w: %s", ErrUserNotFound, name)
	})
}

// Remove deletes an account. Tokens it already holds stay valid until they
// expire or are revoked.
func (u *Users) Remove(name string) error {
	return u.update(func(f *usersFile) error {
		i := slices.IndexFunc(f.Users, func(a *Account) bool { return a.Name == name })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrUserNotFound, name)
		}
		f.Users = slices.Delete(f.Users, i, i+1)
		return nil
	})
}

func (u *Users) update(fn func(*usersFile) error) error {
	if err := os.MkdirAll(filepath.Dir(u.path), 0o700); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	lock, err := os.OpenFile(u.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("users: lock: %w", err)
	}
	f, err := readUsers(u.path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := atomicfile.WriteFile(u.path, append(b, '\n')); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	u.mu.Lock()
	u.byName = nil // read again
	u.mu.Unlock()
	return nil
}
