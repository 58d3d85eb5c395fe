package worker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The conversions of wire.go are inverses of the ToMap side, so that the
// adapter and hyphaworker.Remote see the same values.
func TestWireRoundTrips(t *testing.T) {
	code := 3
	info := SessionInfo{SessionID: "ws/c", AppID: "a", Workspace: "ws", ClientID: "c", Status: StatusFailed,
		AppType: "t", EntryPoint: "main.py", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Metadata: map[string]any{"type": "t"}, Error: "boom", ExitCode: &code}
	back, err := SessionInfoFromMap(info.ToMap())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(info, back); d != "" {
		t.Errorf("session info (-sent +read):\n%s", d)
	}
	if _, err := SessionInfoFromMap(map[string]any{"session_id": "x", "status": 1}); err == nil {
		t.Error("a numeric status was accepted")
	}

	c := Caller{Workspace: "ws", User: map[string]any{"id": "u"}, From: "ws/x", Trusted: true}
	if got := CallerFromMap(c.ToMap()); got.Workspace != "ws" || got.UserID() != "u" || got.From != "ws/x" || got.Trusted {
		t.Errorf("caller = %+v (Trusted must never travel)", got)
	}
	if m := (Caller{Workspace: "ws"}).ToMap(); m["user"] != nil || len(m) != 2 {
		t.Errorf("context without user = %v, want {ws, user: nil}", m)
	}

	q := LogQuery{Type: LogStdout, Offset: -5, Limit: 10, Wait: 1500 * time.Millisecond, Follower: "f1"}
	kw := q.Kwargs()
	q2, err := ParseLogQuery(kw["type"], kw["offset"], kw["limit"])
	if err == nil {
		q2, err = ParseLogFollow(q2, kw["wait"], kw["follower"])
	}
	if err != nil || q2 != q {
		t.Errorf("log query = %+v, %v; want %+v", q2, err, q)
	}
	if kw := (LogQuery{}).Kwargs(); len(kw) != 1 {
		t.Errorf("plain query kwargs = %v, want only offset", kw)
	}

	// A page from another language keeps its own shape.
	foreign := map[string]any{"items": []any{map[string]any{"type": "stdout", "content": "hi"}}, "total": int64(1), "log": []any{"hi"}}
	page, err := LogPageFromMap(foreign)
	if err != nil || len(page.Items) != 1 || page.Items[0].Content != "hi" || page.Total != 1 {
		t.Fatalf("page = %+v, %v", page, err)
	}
	if d := cmp.Diff(foreign, page.ToMap()); d != "" {
		t.Errorf("foreign page handed on changed (-in +out):\n%s", d)
	}
	if _, err := LogPageFromMap(map[string]any{"items": "x"}); err == nil {
		t.Error("items that are not a list were accepted")
	}

	res := CompileResult{Manifest: Manifest{"a": "b"}, Files: []File{{Path: "p", Name: "p", Content: "c", Format: "text"}}}
	got, err := CompileResultFromValue(res.ToList())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(res, got); d != "" {
		t.Errorf("compile result (-sent +read):\n%s", d)
	}
	if _, err := CompileResultFromValue([]any{nil, []any{}}); err == nil {
		t.Error("a nil compiled manifest was accepted")
	}

	if p := ProgressFromValue("plain"); p != (Progress{Type: ProgressInfo, Message: "plain"}) {
		t.Errorf("progress from a string = %+v", p)
	}
	if p := ProgressFromValue(map[string]any{"type": "success", "message": "ok"}); p != (Progress{Type: ProgressSuccess, Message: "ok"}) {
		t.Errorf("progress from a map = %+v", p)
	}
}
