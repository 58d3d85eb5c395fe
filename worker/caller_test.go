package worker

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCallerFromMap(t *testing.T) {
	got := CallerFromMap(map[string]any{
		"ws":   "ws-user-1",
		"user": map[string]any{"id": "u1", "roles": []any{"user"}},
		"from": "ws-user-1/cli",
	})
	want := Caller{Workspace: "ws-user-1", User: map[string]any{"id": "u1", "roles": []any{"user"}}, From: "ws-user-1/cli"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("CallerFromMap (-want +got):\n%s", d)
	}
	if got.UserID() != "u1" {
		t.Errorf("UserID() = %q", got.UserID())
	}
	// Wrong types are ignored and the map can never grant trust.
	bad := CallerFromMap(map[string]any{"ws": 3, "user": "x", "Trusted": true, "trusted": true})
	if d := cmp.Diff(Caller{}, bad); d != "" {
		t.Errorf("bad map (-want +got):\n%s", d)
	}
}

func TestCallerAccess(t *testing.T) {
	tests := []struct {
		name   string
		ctx    context.Context
		ws     string
		access bool
	}{
		{"no caller is an in-process call", context.Background(), "ws-a", true},
		{"own workspace", WithCaller(context.Background(), Caller{Workspace: "ws-a"}), "ws-a", true},
		{"foreign workspace", WithCaller(context.Background(), Caller{Workspace: "ws-b"}), "ws-a", false},
		{"empty caller workspace", WithCaller(context.Background(), Caller{}), "", false},
		{"trusted", WithCaller(context.Background(), Caller{Workspace: "public", Trusted: true}), "ws-a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canAccess(tt.ctx, tt.ws); got != tt.access {
				t.Errorf("canAccess = %v, want %v", got, tt.access)
			}
		})
	}
}
