package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestUsers: add, verify (right, wrong, unknown alike), a second store on
// the same file (the CLI while the server runs) sees changes, concurrent
// adds lose none, the file holds hashes only and is private.
func TestUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "users.json")
	server := OpenUsers(path)
	if server.Len() != 0 {
		t.Fatal("a missing file is not an empty store")
	}
	cli := OpenUsers(path)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if err := cli.Add(fmt.Sprintf("user%d", i), "password-of-user", "", []string{"member"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := server.Len(); n != 3 {
		t.Fatalf("the server sees %d users, want 3", n)
	}
	ctx := context.Background()
	u, err := server.Verify(ctx, "user1", "password-of-user")
	if err != nil || u.ID != "user1" || u.Workspace() != "ws-user-user1" || !u.HasRole("member") {
		t.Fatalf("Verify = %+v, %v", u, err)
	}
	for _, c := range [][2]string{{"user1", "wrong-password"}, {"nobody", "password-of-user"}, {"user1", strings.Repeat("p", 100)}} {
		if _, err := server.Verify(ctx, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%s, %.10s…) = %v", c[0], c[1], err)
		}
	}
	if err := cli.Add("user9", "password-of-user", "", []string{"anonymous"}); err == nil || !strings.Contains(err.Error(), "invalid role") {
		t.Errorf("role anonymous: %v", err)
	}
	if err := cli.Add("user1", "password-of-user", "", nil); !errors.Is(err, ErrUserExists) {
		t.Errorf("duplicate: %v", err)
	}
	if err := cli.SetPassword("user1", "a new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Verify(ctx, "user1", "a new password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := cli.Remove("user2"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Verify(ctx, "user2", "password-of-user"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed user verifies: %v", err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "password-of-user") || !strings.Contains(string(b), "$2a$12$") {
		t.Fatalf("file content: %s", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", st.Mode().Perm())
	}
}

func TestUsernameAndPasswordRules(t *testing.T) {
	for _, bad := range []string{"", "a", "root", "Alice", "al-ice", "anonymouz-x", "brave-river-12345678", "1abc", "a b", strings.Repeat("a", 33)} {
		if err := CheckUsername(bad); !errors.Is(err, ErrBadUsername) {
			t.Errorf("CheckUsername(%q) = %v", bad, err)
		}
	}
	for _, good := range []string{"al", "alice", "bob_2", strings.Repeat("a", 32)} {
		if err := CheckUsername(good); err != nil {
			t.Errorf("CheckUsername(%q) = %v", good, err)
		}
	}
	if err := CheckPassword("1234567"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("short: %v", err)
	}
	if err := CheckPassword(strings.Repeat("p", 73)); !errors.Is(err, ErrBadPassword) {
		t.Errorf("long: %v", err)
	}
}

// BenchmarkVerify is the cost of one password check (bcrypt at
// PasswordCost), which bounds how fast the login page can be guessed at.
func BenchmarkVerify(b *testing.B) {
	u := OpenUsers(filepath.Join(b.TempDir(), "users.json"))
	if err := u.Add("bench", "bench password", "", nil); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := u.Verify(ctx, "bench", "bench password"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_, _ = u.Verify(ctx, "bench", "wrong password")
	}
}
