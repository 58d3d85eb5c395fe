package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

var fixedNow = time.Unix(1_700_000_000, 0)

func testIssuer() *Issuer {
	is := NewIssuer("test-secret", "root-token-xyz")
	is.Now = func() time.Time { return fixedNow }
	return is
}

func TestPermissionParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Permission
		letter  string
		name    string
		wantErr bool
	}{
		{in: "r", want: Read, letter: "r", name: "read"},
		{in: "rw", want: ReadWrite, letter: "rw", name: "read_write"},
		{in: "a", want: Admin, letter: "a", name: "admin"},
		{in: "read", want: Read, letter: "r", name: "read"},
		{in: "read_write", want: ReadWrite, letter: "rw", name: "read_write"},
		{in: "admin", want: Admin, letter: "a", name: "admin"},
		{in: "", wantErr: true},
		{in: "w", wantErr: true},
		{in: "A", wantErr: true},
		{in: "readwrite", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePermission(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParsePermission(%q) = %v, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || got.String() != tc.letter || got.Name() != tc.name || !got.Valid() {
				t.Errorf("ParsePermission(%q) = %v (%q, %q)", tc.in, got, got.String(), got.Name())
			}
		})
	}
	if !(Admin > ReadWrite && ReadWrite > Read && Read > None) {
		t.Error("permission ordering broken")
	}
	if None.String() != "" || None.Valid() {
		t.Error("None should format empty and be invalid")
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Scope
		wantErr bool
	}{
		{name: "empty", in: "", want: Scope{}},
		{name: "spaces only", in: "   ", want: Scope{}},
		{
			name: "full",
			in:   "ws:ws-a#r ws:*#rw ws:ws-b#a cid:client-1 wid:ws-a openid file:download",
			want: Scope{
				CurrentWorkspace: "ws-a",
				Workspaces:       map[string]Permission{"ws-a": Read, "*": ReadWrite, "ws-b": Admin},
				ClientID:         "client-1",
				ExtraScopes:      []string{"openid", "file:download"},
			},
		},
		{
			name: "leading space as upstream produces without workspaces",
			in:   " cid:c wid:w",
			want: Scope{ClientID: "c", CurrentWorkspace: "w"},
		},
		{
			name: "later grant wins",
			in:   "ws:x#r ws:x#a",
			want: Scope{Workspaces: map[string]Permission{"x": Admin}},
		},
		{name: "missing hash", in: "ws:x", wantErr: true},
		{name: "two hashes", in: "ws:x#r#a", wantErr: true},
		{name: "bad permission", in: "ws:x#w", wantErr: true},
		{name: "long name not allowed in scope string", in: "ws:x#read", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScope(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseScope(%q) = %+v, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseScope(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestScopeString(t *testing.T) {
	tests := []struct {
		name string
		in   Scope
		want string
	}{
		{name: "empty", in: Scope{}, want: ""},
		{
			name: "sorted workspaces then cid wid extras",
			in: Scope{
				CurrentWorkspace: "ws-b",
				Workspaces:       map[string]Permission{"ws-b": Admin, "*": Read, "ws-a": ReadWrite, "skip": None},
				ClientID:         "c1",
				ExtraScopes:      []string{"openid", "file:download"},
			},
			want: "ws:*#r ws:ws-a#rw ws:ws-b#a cid:c1 wid:ws-b openid file:download",
		},
		{name: "only cid", in: Scope{ClientID: "c"}, want: "cid:c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.String()
			if got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			back, err := ParseScope(got)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.in.Clone()
			for ws, p := range want.Workspaces {
				if p == None {
					delete(want.Workspaces, ws)
				}
			}
			if diff := cmp.Diff(want, back); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScopeSpecialized(t *testing.T) {
	tests := []struct {
		extra []string
		want  bool
	}{
		{nil, false},
		{[]string{"openid", "profile"}, false},
		{[]string{"openid", "file:download"}, true},
		{[]string{"artifact:read"}, true},
	}
	for _, tc := range tests {
		s := Scope{ExtraScopes: tc.extra}
		if got := s.Specialized(); got != tc.want {
			t.Errorf("Specialized(%v) = %v, want %v", tc.extra, got, tc.want)
		}
		u := &UserInfo{ID: "x", Scope: s}
		if u.Specialized() != tc.want {
			t.Errorf("UserInfo.Specialized(%v) != %v", tc.extra, tc.want)
		}
	}
	if !(Scope{ExtraScopes: []string{"file:download"}}).HasScope("file:download") {
		t.Error("HasScope")
	}
}

func TestUserPermission(t *testing.T) {
	user := &UserInfo{
		ID: "alice",
		Scope: Scope{Workspaces: map[string]Permission{
			"*":      Read,
			"ws-rw":  ReadWrite,
			"ws-adm": Admin,
			"ws-r":   Read,
		}},
	}
	noStar := &UserInfo{ID: "bob", Scope: Scope{Workspaces: map[string]Permission{"ws-x": ReadWrite}}}
	starAdmin := &UserInfo{ID: "carol", Scope: Scope{Workspaces: map[string]Permission{"*": Admin, "ws-x": Read}}}
	root := RootUser()
	rootNoScope := &UserInfo{ID: "root"}
	var nilUser *UserInfo

	tests := []struct {
		name string
		u    *UserInfo
		ws   string
		want Permission
	}{
		{"star only", user, "other", Read},
		{"specific stronger than star", user, "ws-rw", ReadWrite},
		{"specific admin", user, "ws-adm", Admin},
		{"equal", user, "ws-r", Read},
		{"own workspace", user, "ws-user-alice", Admin},
		{"not someone else's workspace", noStar, "ws-user-alice", None},
		{"no grant", noStar, "ws-y", None},
		{"specific grant", noStar, "ws-x", ReadWrite},
		{"star stronger than specific", starAdmin, "ws-x", Admin},
		{"root", root, "anything", Admin},
		{"root without scope", rootNoScope, "public", Admin},
		{"nil user", nilUser, "public", None},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.u.Permission(tc.ws); got != tc.want {
				t.Errorf("Permission(%q) = %v, want %v", tc.ws, got, tc.want)
			}
			for _, min := range []Permission{Read, ReadWrite, Admin} {
				if got, want := tc.u.HasPermission(tc.ws, min), tc.want >= min; got != want {
					t.Errorf("HasPermission(%q, %v) = %v, want %v", tc.ws, min, got, want)
				}
			}
		})
	}
}

func TestGenerateParseRoundTrip(t *testing.T) {
	is := testIssuer()
	tests := []struct {
		name string
		u    *UserInfo
	}{
		{
			name: "full user",
			u: &UserInfo{
				ID:    "github|123",
				Roles: []string{"user", "admin"},
				Email: "a@b.c",
				Scope: Scope{
					CurrentWorkspace: "ws-demo",
					Workspaces:       map[string]Permission{"ws-demo": ReadWrite, "*": Read},
					ClientID:         "cl-1",
					ExtraScopes:      []string{"openid"},
				},
			},
		},
		{
			name: "child token with parent",
			u: &UserInfo{
				ID:     "brave-otter-00000001",
				Parent: "github|123",
				Roles:  []string{},
				Scope:  Scope{CurrentWorkspace: "ws-demo", Workspaces: map[string]Permission{"ws-demo": Read}},
			},
		},
		{
			name: "anonymous, no roles slice",
			u:    &UserInfo{ID: "anonymouz-x", Roles: []string{"anonymous"}},
		},
		{
			name: "nil roles",
			u:    &UserInfo{ID: "u"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := is.Generate(tc.u, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			got, err := is.Parse(tok)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.u.Clone()
			if want.Roles == nil {
				want.Roles = []string{}
			}
			want.IsAnonymous = want.HasRole("anonymous")
			want.ExpiresAt = fixedNow.Add(time.Hour).Unix()
			want.CurrentWorkspace = want.Scope.CurrentWorkspace
			if want.Scope.Workspaces == nil {
				want.Scope.Workspaces = map[string]Permission{}
			}
			want.Scope.Workspaces["ws-user-"+want.ID] = Admin
			want.TokenID = TokenID(tok)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
			// Bearer prefix, any case.
			for _, p := range []string{"Bearer ", "bearer ", "BEARER  "} {
				got2, err := is.Parse(p + tok)
				if err != nil {
					t.Fatalf("Parse(%q+token): %v", p, err)
				}
				if diff := cmp.Diff(got, got2); diff != "" {
					t.Errorf("bearer mismatch:\n%s", diff)
				}
			}
		})
	}
}

func TestGenerateClaims(t *testing.T) {
	is := testIssuer()
	u := &UserInfo{ID: "u1", Roles: []string{"r1"}, Parent: "p1", Scope: Scope{Workspaces: map[string]Permission{"w": Admin}, CurrentWorkspace: "w"}}
	tok, err := is.Generate(u, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, claims)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["alg"] != "HS256" || parsed.Header["typ"] != "JWT" {
		t.Errorf("header = %v", parsed.Header)
	}
	want := jwt.MapClaims{
		"iss":                    "https://amun.ai/",
		"aud":                    "https://amun-ai.eu.auth0.com/api/v2/",
		"sub":                    "u1",
		"iat":                    float64(fixedNow.Unix()),
		"exp":                    float64(fixedNow.Unix() + 90),
		"gty":                    "client-credentials",
		"scope":                  "ws:w#a wid:w",
		"https://amun.ai/roles":  []any{"r1"},
		"https://amun.ai/email":  nil,
		"https://amun.ai/parent": "p1",
	}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("claims mismatch (-want +got):\n%s", diff)
	}
	// No parent claim when the user has no parent.
	tok, err = is.Generate(&UserInfo{ID: "u2", Email: "e@x.y"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	claims = jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["https://amun.ai/parent"]; ok {
		t.Error("unexpected parent claim")
	}
	if claims["https://amun.ai/email"] != "e@x.y" {
		t.Errorf("email claim = %v", claims["https://amun.ai/email"])
	}
	if r, ok := claims["https://amun.ai/roles"].([]any); !ok || len(r) != 0 {
		t.Errorf("roles claim = %#v, want empty list", claims["https://amun.ai/roles"])
	}
}

func TestGenerateCustomNamespace(t *testing.T) {
	is := testIssuer()
	is.Namespace = "https://example.org/"
	is.Issuer = "https://iss.example.org/"
	is.Audience = "aud-x"
	tok, err := is.Generate(&UserInfo{ID: "u", Roles: []string{"x"}, Email: "m@n.o"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, err := is.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "m@n.o" || !cmp.Equal(u.Roles, []string{"x"}) {
		t.Errorf("got %+v", u)
	}
	// The default issuer rejects it (issuer and audience differ).
	if _, err := testIssuer().Parse(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("default issuer Parse err = %v, want ErrTokenInvalid", err)
	}
}

func TestGenerateErrors(t *testing.T) {
	is := testIssuer()
	if _, err := is.Generate(nil, time.Minute); err == nil {
		t.Error("nil user accepted")
	}
	if _, err := is.Generate(&UserInfo{}, time.Minute); err == nil {
		t.Error("empty id accepted")
	}
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := is.Generate(&UserInfo{ID: "x"}, d); err == nil {
			t.Errorf("expiresIn %v accepted", d)
		}
	}
	if _, err := (&Issuer{}).Generate(&UserInfo{ID: "x"}, time.Minute); err == nil {
		t.Error("empty secret accepted")
	}
}

// sign builds a token with arbitrary claims, method and key.
func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func baseClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":                   DefaultIssuer,
		"aud":                   DefaultAudience,
		"sub":                   "user-1",
		"iat":                   fixedNow.Unix(),
		"exp":                   fixedNow.Unix() + 60,
		"scope":                 "ws:w#r",
		"gty":                   "client-credentials",
		"https://amun.ai/roles": []string{},
		"https://amun.ai/email": nil,
	}
}

func with(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := baseClaims()
	mod(c)
	return c
}

func TestParseErrors(t *testing.T) {
	is := testIssuer()
	secret := is.Secret
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, secret, baseClaims())
	parts := strings.Split(good, ".")
	otherPayload := strings.Split(sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["sub"] = "root" })), ".")[1]

	tests := []struct {
		name    string
		token   string
		want    error
		message string // substring of the error message
	}{
		{"expired", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["exp"] = fixedNow.Unix() - 1 })), ErrTokenExpired, "expired"},
		{"expired and wrong issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) {
			c["exp"] = fixedNow.Unix() - 1
			c["iss"] = "x"
		})), ErrTokenExpired, "expired"},
		{"other secret", sign(t, jwt.SigningMethodHS256, []byte("other"), baseClaims()), ErrTokenInvalid, "signature"},
		{"expired with other secret", sign(t, jwt.SigningMethodHS256, []byte("other"), with(func(c jwt.MapClaims) { c["exp"] = fixedNow.Unix() - 1 })), ErrTokenInvalid, "signature"},
		{"HS512 other key", sign(t, jwt.SigningMethodHS512, []byte("other"), baseClaims()), ErrTokenInvalid, "algorithm"},
		{"HS512 same key", sign(t, jwt.SigningMethodHS512, secret, baseClaims()), ErrTokenInvalid, "algorithm"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, baseClaims()), ErrTokenInvalid, "algorithm"},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, baseClaims()), ErrTokenInvalid, "algorithm"},
		{"forged payload", parts[0] + "." + otherPayload + "." + parts[2], ErrTokenInvalid, "signature"},
		{"stripped signature", parts[0] + "." + parts[1] + ".", ErrTokenInvalid, ""},
		{"garbage", "not-a-jwt", ErrTokenInvalid, "malformed"},
		{"garbage three parts", "a.b.c", ErrTokenInvalid, "malformed"},
		{"empty", "", ErrTokenInvalid, "empty"},
		{"blank", "   ", ErrTokenInvalid, "empty"},
		{"bearer only", "Bearer ", ErrTokenInvalid, ""},
		{"bearer two tokens", "Bearer " + good + " extra", ErrTokenInvalid, "Bearer"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["iss"] = "https://evil/" })), ErrTokenInvalid, "issuer"},
		{"missing issuer", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "iss") })), ErrTokenInvalid, ""},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["aud"] = "other" })), ErrTokenInvalid, "audience"},
		{"wrong audience list", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} })), ErrTokenInvalid, "audience"},
		{"missing exp", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "exp") })), ErrTokenInvalid, ""},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["nbf"] = fixedNow.Unix() + 30 })), ErrTokenInvalid, "not valid yet"},
		{"missing sub", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { delete(c, "sub") })), ErrTokenInvalid, "subject"},
		{"bad scope", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["scope"] = "ws:x#zz" })), ErrTokenInvalid, "permission"},
		{"scope not string", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["scope"] = 5 })), ErrTokenInvalid, "scope"},
		{"roles not list", sign(t, jwt.SigningMethodHS256, secret, with(func(c jwt.MapClaims) { c["https://amun.ai/roles"] = "admin" })), ErrTokenInvalid, "roles"},
		{"root token with suffix", "root-token-xyzz", ErrTokenInvalid, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := is.Parse(tc.token)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", u)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrTokenInvalid && errors.Is(err, ErrTokenExpired) {
				t.Fatalf("err %v is both invalid and expired", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("err = %q, want it to mention %q", err, tc.message)
			}
			if tok := strings.TrimSpace(strings.TrimPrefix(tc.token, "Bearer ")); len(tok) > 8 {
				for _, seg := range strings.Split(tok, ".") {
					if len(seg) > 8 && strings.Contains(err.Error(), seg) {
						t.Errorf("error message leaks the token: %q", err)
					}
				}
			}
		})
	}
}

func TestParseAudienceOptional(t *testing.T) {
	// Like upstream (python-jose), a token without an aud claim is accepted.
	is := testIssuer()
	tok := sign(t, jwt.SigningMethodHS256, is.Secret, with(func(c jwt.MapClaims) { delete(c, "aud") }))
	if _, err := is.Parse(tok); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tok = sign(t, jwt.SigningMethodHS256, is.Secret, with(func(c jwt.MapClaims) { c["aud"] = []string{"x", DefaultAudience} }))
	if _, err := is.Parse(tok); err != nil {
		t.Fatalf("Parse with audience list: %v", err)
	}
}

func TestParseExpiryBoundary(t *testing.T) {
	is := testIssuer()
	tok, err := is.Generate(&UserInfo{ID: "u"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	is.Now = func() time.Time { return fixedNow.Add(9 * time.Second) }
	if _, err := is.Parse(tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	is.Now = func() time.Time { return fixedNow.Add(11 * time.Second) }
	if _, err := is.Parse(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestRootToken(t *testing.T) {
	is := testIssuer()
	want := &UserInfo{
		ID:    "root",
		Roles: []string{"admin"},
		Scope: Scope{CurrentWorkspace: "ws-user-root", Workspaces: map[string]Permission{"*": Admin}},
	}
	for _, tok := range []string{"root-token-xyz", "Bearer root-token-xyz", " root-token-xyz\n", "bearer root-token-xyz"} {
		u, err := is.Parse(tok)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tok, err)
		}
		if diff := cmp.Diff(want, u); diff != "" {
			t.Errorf("root user mismatch (-want +got):\n%s", diff)
		}
		if u.Permission("any-ws") != Admin || u.IsAnonymous {
			t.Errorf("root permissions wrong: %+v", u)
		}
	}
	if diff := cmp.Diff(want, RootUser()); diff != "" {
		t.Errorf("RootUser mismatch:\n%s", diff)
	}
	// No root token configured: the same string is just garbage.
	is.RootToken = ""
	if _, err := is.Parse("root-token-xyz"); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("err = %v", err)
	}
	if is.IsRootToken("") {
		t.Error("empty root token matched")
	}
}

func TestNewAnonymous(t *testing.T) {
	is := testIssuer()
	re := regexp.MustCompile(`^anonymouz-[a-z]+-[a-z]+-[0-9]{8}$`)
	seen := map[string]bool{}
	for range 20 {
		u := is.NewAnonymous()
		if !re.MatchString(u.ID) {
			t.Fatalf("anonymous id %q", u.ID)
		}
		seen[u.ID] = true
		want := &UserInfo{
			ID:          u.ID,
			Roles:       []string{"anonymous"},
			IsAnonymous: true,
			ExpiresAt:   fixedNow.Unix() + 600,
			Scope:       Scope{Workspaces: map[string]Permission{"ws-user-" + u.ID: Admin}},
		}
		if diff := cmp.Diff(want, u); diff != "" {
			t.Fatalf("anonymous mismatch (-want +got):\n%s", diff)
		}
		if u.Permission(u.Workspace()) != Admin || u.Permission("public") != None {
			t.Fatalf("anonymous permissions wrong")
		}
	}
	if len(seen) < 15 {
		t.Errorf("anonymous ids not random enough: %d distinct of 20", len(seen))
	}
}

func TestNewIssuerDefaults(t *testing.T) {
	is := NewIssuer("", "")
	if len(is.Secret) < 32 {
		t.Errorf("random secret too short: %d", len(is.Secret))
	}
	if string(NewIssuer("", "").Secret) == string(is.Secret) {
		t.Error("random secrets repeat")
	}
	if is.Issuer != DefaultIssuer || is.Audience != DefaultAudience || is.Namespace != DefaultNamespace || is.Now == nil {
		t.Errorf("defaults not filled: %+v", is)
	}
	// A zero-value Issuer with only a secret uses the defaults as well.
	zero := &Issuer{Secret: []byte("s")}
	tok, err := zero.Generate(&UserInfo{ID: "u"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer("s", "").Parse(tok); err != nil {
		t.Errorf("zero-value issuer token rejected: %v", err)
	}
}

func TestToMap(t *testing.T) {
	u := &UserInfo{
		ID:          "github|1",
		Roles:       []string{"admin"},
		IsAnonymous: false,
		Scope: Scope{
			CurrentWorkspace: "ws-a",
			Workspaces:       map[string]Permission{"ws-a": ReadWrite, "*": Read, "gone": None},
			ClientID:         "c1",
			ExtraScopes:      []string{"openid"},
		},
		Email:            "a@b.c",
		Parent:           "p",
		ExpiresAt:        1234,
		CurrentWorkspace: "ws-a",
	}
	want := map[string]any{
		"id":           "github|1",
		"roles":        []any{"admin"},
		"is_anonymous": false,
		"scope": map[string]any{
			"current_workspace": "ws-a",
			"workspaces":        map[string]any{"ws-a": "rw", "*": "r"},
			"client_id":         "c1",
			"extra_scopes":      []any{"openid"},
		},
		"email":             "a@b.c",
		"parent":            "p",
		"expires_at":        int64(1234),
		"current_workspace": "ws-a",
	}
	if diff := cmp.Diff(want, u.ToMap()); diff != "" {
		t.Errorf("ToMap mismatch (-want +got):\n%s", diff)
	}
	empty := (&UserInfo{ID: "x"}).ToMap()
	wantEmpty := map[string]any{
		"id":           "x",
		"roles":        []any{},
		"is_anonymous": false,
		"scope": map[string]any{
			"current_workspace": nil,
			"workspaces":        map[string]any{},
			"client_id":         nil,
			"extra_scopes":      []any{},
		},
		"email":             nil,
		"parent":            nil,
		"expires_at":        nil,
		"current_workspace": nil,
	}
	if diff := cmp.Diff(wantEmpty, empty); diff != "" {
		t.Errorf("ToMap(empty) mismatch (-want +got):\n%s", diff)
	}
}

func TestUserFromMap(t *testing.T) {
	full := &UserInfo{
		ID:          "u",
		Roles:       []string{"a", "b"},
		IsAnonymous: true,
		Scope: Scope{
			CurrentWorkspace: "w",
			Workspaces:       map[string]Permission{"w": Admin, "*": Read},
			ClientID:         "c",
			ExtraScopes:      []string{"x:y"},
		},
		Email: "e@x.y", Parent: "p", ExpiresAt: 99, CurrentWorkspace: "w",
	}
	got, err := UserFromMap(full.ToMap())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}

	tests := []struct {
		name    string
		in      map[string]any
		want    *UserInfo
		wantErr bool
	}{
		{name: "only id", in: map[string]any{"id": "x"}, want: &UserInfo{ID: "x"}},
		{name: "nils", in: map[string]any{"id": "x", "roles": nil, "scope": nil, "email": nil, "expires_at": nil}, want: &UserInfo{ID: "x"}},
		{name: "expires int64", in: map[string]any{"id": "x", "expires_at": int64(5)}, want: &UserInfo{ID: "x", ExpiresAt: 5}},
		{name: "expires uint64", in: map[string]any{"id": "x", "expires_at": uint64(6)}, want: &UserInfo{ID: "x", ExpiresAt: 6}},
		{name: "expires float64", in: map[string]any{"id": "x", "expires_at": 7.9}, want: &UserInfo{ID: "x", ExpiresAt: 7}},
		{name: "expires int", in: map[string]any{"id": "x", "expires_at": 8}, want: &UserInfo{ID: "x", ExpiresAt: 8}},
		{name: "string lists", in: map[string]any{"id": "x", "roles": []string{"r"}, "scope": map[string]any{"extra_scopes": []string{"e"}, "workspaces": map[string]string{"w": "rw"}}},
			want: &UserInfo{ID: "x", Roles: []string{"r"}, Scope: Scope{ExtraScopes: []string{"e"}, Workspaces: map[string]Permission{"w": ReadWrite}}}},
		{name: "long permission names", in: map[string]any{"id": "x", "scope": map[string]any{"workspaces": map[string]any{"w": "admin"}}},
			want: &UserInfo{ID: "x", Scope: Scope{Workspaces: map[string]Permission{"w": Admin}}}},
		{name: "unknown keys ignored", in: map[string]any{"id": "x", "foo": 1, "scope": map[string]any{"bar": true}}, want: &UserInfo{ID: "x"}},
		{name: "nil map", in: nil, wantErr: true},
		{name: "missing id", in: map[string]any{"roles": []any{}}, wantErr: true},
		{name: "id not string", in: map[string]any{"id": int64(1)}, wantErr: true},
		{name: "roles not list", in: map[string]any{"id": "x", "roles": "admin"}, wantErr: true},
		{name: "role not string", in: map[string]any{"id": "x", "roles": []any{1}}, wantErr: true},
		{name: "is_anonymous not bool", in: map[string]any{"id": "x", "is_anonymous": "yes"}, wantErr: true},
		{name: "bad permission", in: map[string]any{"id": "x", "scope": map[string]any{"workspaces": map[string]any{"w": "x"}}}, wantErr: true},
		{name: "permission not string", in: map[string]any{"id": "x", "scope": map[string]any{"workspaces": map[string]any{"w": 1}}}, wantErr: true},
		{name: "scope not map", in: map[string]any{"id": "x", "scope": "ws:x#r"}, wantErr: true},
		{name: "expires not number", in: map[string]any{"id": "x", "expires_at": "soon"}, wantErr: true},
		{name: "expires overflow", in: map[string]any{"id": "x", "expires_at": uint64(1 << 63)}, wantErr: true},
		{name: "expires NaN-like huge float", in: map[string]any{"id": "x", "expires_at": 1e300}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UserFromMap(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("UserFromMap = %+v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	u := &UserInfo{ID: "x", Roles: []string{"a"}, Scope: Scope{Workspaces: map[string]Permission{"w": Read}, ExtraScopes: []string{"e"}}}
	c := u.Clone()
	c.Roles[0] = "b"
	c.Scope.Workspaces["w"] = Admin
	c.Scope.ExtraScopes[0] = "f"
	if u.Roles[0] != "a" || u.Scope.Workspaces["w"] != Read || u.Scope.ExtraScopes[0] != "e" {
		t.Error("Clone shares memory")
	}
	if (*UserInfo)(nil).Clone() != nil {
		t.Error("nil clone")
	}
}

func TestEffectiveID(t *testing.T) {
	if (&UserInfo{ID: "c", Parent: "p"}).EffectiveID() != "p" || (&UserInfo{ID: "c"}).EffectiveID() != "c" {
		t.Error("EffectiveID")
	}
}
