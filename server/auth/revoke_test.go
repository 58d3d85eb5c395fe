package auth

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRevocationsPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens", "revoked.jsonl")
	r, err := OpenRevocations(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := r.Revoke("live", now.Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke("lapsed", now.Add(-time.Second), false); err != nil {
		t.Fatal(err)
	}
	if !r.Revoked("live") || r.Revoked("lapsed") || r.Revoked("other") {
		t.Fatal("wrong answers before the restart")
	}
	r.Close()
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %o", p, st.Mode(), err, want)
		}
	}
	// A crash while appending leaves a torn line: it is dropped, the rest kept.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"id":"torn","unt`)
	f.Close()
	r, err = OpenRevocations(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Revoked("live") || r.Revoked("lapsed") || r.Revoked("torn") || r.Len() != 1 {
		t.Fatalf("after the restart: live %v lapsed %v len %d", r.Revoked("live"), r.Revoked("lapsed"), r.Len())
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "lapsed") || strings.Contains(string(b), "torn") {
		t.Fatalf("the file was not compacted at open: %s", b)
	}
}

func TestRevocationsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revoked.jsonl")
	r, err := OpenRevocations(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	r.nowFunc = func() time.Time { return now }
	for _, id := range []string{"a", "b"} {
		if err := r.Revoke(id, now.Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
	}
	err = r.Revoke("c", now.Add(time.Minute), false)
	if !errors.Is(err, ErrRevocationsFull) || !strings.Contains(err.Error(), "2 entries: the limit set by --max-revoked-tokens") {
		t.Fatalf("third entry: %v", err)
	}
	if r.Revoked("c") {
		t.Fatal("a refused revocation took effect")
	}
	if err := r.Revoke("c", now.Add(time.Minute), true); err != nil || !r.Revoked("c") {
		t.Fatalf("forced revocation: %v", err)
	}
	// Once the entries lapse, there is room again, and the file shrinks
	// when it has grown to twice the live entries.
	now = now.Add(2 * time.Minute)
	for i := range 200 {
		if err := r.Revoke(string(rune('A'+i%26))+strings.Repeat("x", i), now.Add(time.Duration(i+1)*time.Second), true); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Hour)
	if err := r.Revoke("d", now.Add(time.Minute), false); err != nil {
		t.Fatalf("after the entries lapsed: %v", err)
	}
	r.mu.Lock()
	lines := r.lines
	r.mu.Unlock()
	if lines > 2*r.Len()+64 {
		t.Fatalf("%d lines for %d live entries", lines, r.Len())
	}
}

func TestParseRefusesRevokedAndDerived(t *testing.T) {
	is := NewIssuer("secret", "")
	is.Revoked = NewRevocations(0)
	parent, err := is.Generate(&UserInfo{ID: "p"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := is.Parse(parent)
	if err != nil {
		t.Fatal(err)
	}
	if pu.TokenID != TokenID(parent) || TokenID("Bearer "+parent) != pu.TokenID {
		t.Fatal("token ids differ")
	}
	child, err := is.Generate(&UserInfo{ID: "c", Chain: pu.Lineage()}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cu, err := is.Parse(child); err != nil || len(cu.Chain) != 1 || cu.Chain[0] != pu.TokenID {
		t.Fatalf("child: %+v %v", cu, err)
	}
	if err := is.Revoked.Revoke(pu.TokenID, time.Now().Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"parent": parent, "child": child, "bearer": "Bearer " + parent} {
		_, err := is.Parse(tok)
		if !errors.Is(err, ErrTokenRevoked) || !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A chain claim longer than MaxChain, or not a list of strings, is refused.
	for _, chain := range []any{make([]any, MaxChain+1), "x", []any{1}} {
		if l, ok := chain.([]any); ok && len(l) > 1 {
			for i := range l {
				l[i] = "id"
			}
		}
		claims := jwt.MapClaims{"iss": DefaultIssuer, "sub": "u", "exp": time.Now().Add(time.Hour).Unix(), DefaultNamespace + "chain": chain}
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.Secret)
		if _, err := is.Parse(tok); !errors.Is(err, ErrTokenInvalid) || !strings.Contains(err.Error(), "chain claim") {
			t.Fatalf("chain %v: %v", chain, err)
		}
	}
	if _, err := is.Generate(&UserInfo{ID: "deep", Chain: make([]string, MaxChain+1)}, time.Hour); err == nil {
		t.Fatal("generated a token with an over-long chain")
	}
}

func TestParseLifetime(t *testing.T) {
	is := NewIssuer("secret", "")
	is.MaxLifetime = time.Hour
	cases := []struct {
		v    any
		want time.Duration
		err  string
	}{
		{nil, 10 * time.Second, ""},
		{int64(0), 10 * time.Second, ""},
		{int64(60), time.Minute, ""},
		{1.5, 1500 * time.Millisecond, ""},
		{uint64(3600), time.Hour, ""},
		{int64(3601), 0, "over the maximum token lifetime of 3600 s"},
		{9e18, 0, "over the maximum token lifetime"},
		{-1.0, 0, "positive"},
		{math.NaN(), 0, "finite"},
		{math.Inf(1), 0, "finite"},
		{0.5, 0, "at least 1 second"},
		{"60", 0, "got string"},
	}
	for _, tc := range cases {
		d, err := is.ParseLifetime(tc.v, 10*time.Second)
		if tc.err == "" && (err != nil || d != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseLifetime(%v) = %v, %v; want %v %q", tc.v, d, err, tc.want, tc.err)
		}
	}
	if !errors.Is(func() error { _, err := is.ParseLifetime(int64(7200), 0); return err }(), ErrLifetimeTooLong) {
		t.Error("not ErrLifetimeTooLong")
	}
	// Without a cap, values that would overflow a Duration are refused.
	is.MaxLifetime = 0
	if _, err := is.ParseLifetime(1e12, 0); err == nil {
		t.Error("1e12 s accepted without a cap")
	}
	if is.ClampLifetime(48*time.Hour) != 48*time.Hour {
		t.Error("clamped without a cap")
	}
	is.MaxLifetime = time.Hour
	if is.ClampLifetime(48*time.Hour) != time.Hour || is.ClampLifetime(time.Minute) != time.Minute {
		t.Error("ClampLifetime")
	}
}
