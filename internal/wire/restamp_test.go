package wire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRestamp(t *testing.T) {
	user := MustRaw(map[string]any{"id": "u1", "roles": []any{"admin"}})
	for _, tc := range []struct {
		name  string
		main  map[string]any
		extra map[string]any
		want  map[string]any
		to    string
	}{
		{
			name:  "call with spoofed trusted fields",
			main:  map[string]any{"type": "method", "from": "evil/x", "to": "b", "method": "services.s.f", "session": "S1", "ws": "evil", "user": map[string]any{"id": "root"}},
			extra: map[string]any{"args": []any{"hi", []byte{1, 2}}, "promise": "*", "t": 15.0},
			to:    "b",
			want:  map[string]any{"type": "method", "from": "ws/a", "to": "ws/b", "method": "services.s.f", "session": "S1", "ws": "ws", "user": map[string]any{"id": "u1", "roles": []any{"admin"}}},
		},
		{
			name: "single segment heartbeat",
			main: map[string]any{"type": "method", "to": "ws/b", "method": "S1.heartbeat", "parent": "S1"},
			to:   "ws/b",
			want: map[string]any{"type": "method", "from": "ws/a", "to": "ws/b", "method": "S1.heartbeat", "parent": "S1", "ws": "ws", "user": map[string]any{"id": "u1", "roles": []any{"admin"}}},
		},
		{
			name: "unknown keys kept, non-string to",
			main: map[string]any{"type": "custom", "to": 5, "x": map[string]any{"deep": []any{int64(1)}}},
			to:   "",
			want: map[string]any{"type": "custom", "from": "ws/a", "to": "ws/b", "x": map[string]any{"deep": []any{int64(1)}}, "ws": "ws", "user": map[string]any{"id": "u1", "roles": []any{"admin"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var frame []byte
			var err error
			if tc.extra != nil {
				frame, err = Encode(tc.main, tc.extra)
			} else {
				frame, err = Encode(tc.main)
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := ScanMain(frame)
			if err != nil {
				t.Fatal(err)
			}
			if m.To != tc.to {
				t.Errorf("To = %q, want %q", m.To, tc.to)
			}
			out := m.Restamp(frame, "ws/a", "ws/b", "ws", user)
			gotMain, tail, err := DecodeMain(out)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, gotMain); diff != "" {
				t.Errorf("main (-want +got):\n%s", diff)
			}
			_, origTail, _ := DecodeMain(frame)
			if !bytes.Equal(tail, origTail) {
				t.Errorf("tail changed")
			}
		})
	}
}

func TestScanMainRejects(t *testing.T) {
	for name, frame := range map[string][]byte{
		"empty":     {},
		"not a map": MustRaw([]any{1, 2}),
		"int key":   MustRaw(map[int]any{1: "x"}),
		"truncated": MustRaw(map[string]any{"to": "abcdef"})[:5],
		"huge map":  {0xdf, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := ScanMain(frame); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzScanMain(f *testing.F) {
	seed, _ := Encode(map[string]any{"type": "method", "to": "b", "session": "s"}, map[string]any{"args": []any{1}})
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := ScanMain(frame)
		if err != nil {
			return
		}
		if _, _, err := DecodeMain(frame); err != nil {
			return // kept entries are copied verbatim; only decodable input must stay decodable
		}
		out := m.Restamp(frame, "w/a", "w/b", "w", nil)
		main, _, err := DecodeMain(out)
		if err != nil {
			t.Fatalf("restamped frame does not decode: %v", err)
		}
		if main["from"] != "w/a" || main["to"] != "w/b" || main["ws"] != "w" {
			t.Fatalf("stamps missing: %v", main)
		}
	})
}
