package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock returns increasing times so ordering is deterministic.
func fakeClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

func newTestRegistry(opts RegistryOptions) *Registry {
	if opts.Now == nil {
		opts.Now = fakeClock()
	}
	return NewRegistry(opts)
}

func mustCreate(t *testing.T, r *Registry, id string) *Session {
	t.Helper()
	s, err := r.Create(SessionInfo{SessionID: id}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegistryCreate(t *testing.T) {
	r := newTestRegistry(RegistryOptions{MaxSessions: 2})
	s := mustCreate(t, r, "ws-a/c1")
	info := s.Info()
	if info.Status != StatusStarting || info.Workspace != "ws-a" || info.CreatedAt.IsZero() {
		t.Errorf("new session info = %+v", info)
	}
	if _, err := r.Create(SessionInfo{SessionID: "ws-a/c1"}, nil); !errors.Is(err, ErrSessionExists) {
		t.Errorf("duplicate: err = %v, want ErrSessionExists", err)
	}
	mustCreate(t, r, "ws-b/c2")
	if _, err := r.Create(SessionInfo{SessionID: "ws-b/c3"}, nil); !errors.Is(err, ErrWorkerNotAvailable) {
		t.Errorf("over limit: err = %v, want ErrWorkerNotAvailable", err)
	}
	if _, err := r.Create(SessionInfo{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("empty id: err = %v", err)
	}
	if _, err := r.Create(SessionInfo{SessionID: "x/y", Status: StatusRunning}, nil); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("created running: err = %v", err)
	}
	if r.Len() != 2 {
		t.Errorf("Len = %d", r.Len())
	}

	cfg := Config{ID: "ws-c/c9", Workspace: "ws-c", AppID: "app", Manifest: Manifest{"type": "t"}}
	r2 := newTestRegistry(RegistryOptions{})
	s2, err := r2.CreateFromConfig(cfg, "handle")
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Info(); got.AppType != "t" || got.AppID != "app" || got.Status != StatusStarting {
		t.Errorf("CreateFromConfig info = %+v", got)
	}
	if h, ok := HandleOf[string](s2); !ok || h != "handle" {
		t.Errorf("HandleOf = %q, %v", h, ok)
	}
	if _, ok := HandleOf[int](s2); ok {
		t.Error("HandleOf with the wrong type must fail")
	}
	s2.SetHandle(42)
	if h, _ := HandleOf[int](s2); h != 42 {
		t.Errorf("after SetHandle: %v", h)
	}
}

// TestIllegalTransitionsRefused drives real sessions through refused
// transitions and checks nothing changes.
func TestIllegalTransitionsRefused(t *testing.T) {
	tests := []struct {
		path []Status // legal steps from starting
		bad  Status
	}{
		{nil, StatusStopped},
		{nil, StatusCompleted},
		{nil, StatusStarting},
		{[]Status{StatusRunning}, StatusStarting},
		{[]Status{StatusRunning}, StatusStopped},
		{[]Status{StatusRunning}, StatusRunning},
		{[]Status{StatusRunning, StatusCompleted}, StatusRunning},
		{[]Status{StatusRunning, StatusCompleted}, StatusFailed},
		{[]Status{StatusFailed}, StatusRunning},
		{[]Status{StatusFailed}, StatusCompleted},
		{[]Status{StatusRunning, StatusStopping}, StatusRunning},
		{[]Status{StatusRunning, StatusStopping, StatusStopped}, StatusStarting},
		{[]Status{StatusRunning, StatusStopping, StatusStopped}, StatusStopping},
		{[]Status{StatusRunning, StatusStopping, StatusStopped}, StatusFailed},
	}
	for _, tt := range tests {
		name := string(StatusStarting)
		for _, p := range tt.path {
			name += "->" + string(p)
		}
		t.Run(name+"-x->"+string(tt.bad), func(t *testing.T) {
			s := mustCreate(t, newTestRegistry(RegistryOptions{}), "ws/c")
			for _, p := range tt.path {
				if err := s.SetStatus(p); err != nil {
					t.Fatalf("legal step %s: %v", p, err)
				}
			}
			before := s.Status()
			err := s.SetStatus(tt.bad)
			if !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("SetStatus(%s) err = %v, want ErrInvalidTransition", tt.bad, err)
			}
			if s.Status() != before {
				t.Errorf("status changed to %s on a refused transition", s.Status())
			}
		})
	}
}

func TestSessionFailAndContext(t *testing.T) {
	s := mustCreate(t, newTestRegistry(RegistryOptions{}), "ws/c")
	if err := s.SetStatus(StatusRunning); err != nil {
		t.Fatal(err)
	}
	if s.Context().Err() != nil {
		t.Fatal("context cancelled while running")
	}
	if err := s.Fail(errors.New("process exited with 1")); err != nil {
		t.Fatal(err)
	}
	if s.Context().Err() == nil {
		t.Error("context not cancelled after failing")
	}
	info := s.Info()
	if info.Status != StatusFailed || info.Error != "process exited with 1" {
		t.Errorf("info = %+v", info)
	}
	page := s.Logs().Page(LogQuery{Type: LogError})
	if len(page.Items) != 1 || page.Items[0].Content != "process exited with 1" {
		t.Errorf("error log = %+v", page.Items)
	}
	if err := s.Fail(errors.New("again")); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("second Fail err = %v", err)
	}
}

func TestRegistryWorkspaceIsolation(t *testing.T) {
	r := newTestRegistry(RegistryOptions{})
	a1 := mustCreate(t, r, "ws-a/c1")
	mustCreate(t, r, "ws-b/c2")
	mustCreate(t, r, "ws-a/c3")

	ids := func(infos []SessionInfo) []string {
		out := []string{}
		for _, i := range infos {
			out = append(out, i.SessionID)
		}
		return out
	}
	bg := context.Background()
	userA := WithCaller(bg, Caller{Workspace: "ws-a"})
	server := WithCaller(bg, Caller{Workspace: "public", Trusted: true})
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"List ws-a", ids(r.List("ws-a")), []string{"ws-a/c1", "ws-a/c3"}},
		{"List all", ids(r.List("")), []string{"ws-a/c1", "ws-b/c2", "ws-a/c3"}},
		{"ListFor own", ids(r.ListFor(userA, "ws-a")), []string{"ws-a/c1", "ws-a/c3"}},
		{"ListFor foreign", ids(r.ListFor(userA, "ws-b")), []string{}},
		{"ListFor all by untrusted", ids(r.ListFor(userA, "")), []string{}},
		{"ListFor trusted", ids(r.ListFor(server, "ws-b")), []string{"ws-b/c2"}},
		{"ListFor in-process", ids(r.ListFor(bg, "")), []string{"ws-a/c1", "ws-b/c2", "ws-a/c3"}},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, tt.got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}

	if s, err := r.LookupFor(userA, "ws-a/c1"); err != nil || s != a1 {
		t.Errorf("own lookup: %v", err)
	}
	_, foreign := r.LookupFor(userA, "ws-b/c2")
	_, missing := r.LookupFor(userA, "ws-b/nope")
	if !errors.Is(foreign, ErrSessionNotFound) {
		t.Errorf("foreign lookup err = %v", foreign)
	}
	// Same text apart from the id: existence is not revealed.
	if foreign.Error() != "session not found: ws-b/c2" || missing.Error() != "session not found: ws-b/nope" {
		t.Errorf("messages: %q / %q", foreign, missing)
	}
	if _, err := r.LookupFor(server, "ws-b/c2"); err != nil {
		t.Errorf("trusted lookup: %v", err)
	}

	for _, tt := range []struct {
		ws, id string
		ok     bool
	}{
		{"ws-a", "ws-a/c1", true},
		{"ws-b", "ws-a/c1", false},
		{"", "ws-a/c1", false},
		{"ws-a", "ws-a/none", false},
	} {
		err := r.CheckWorkspace(tt.ws, tt.id)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrSessionNotFound)) {
			t.Errorf("CheckWorkspace(%q, %q) = %v", tt.ws, tt.id, err)
		}
	}
}

func TestStopSession(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(RegistryOptions{})

	if err := r.StopSession(ctx, "ws/unknown", nil); err != nil {
		t.Errorf("unknown session: %v", err)
	}

	s := mustCreate(t, r, "ws/c1")
	if err := s.SetStatus(StatusRunning); err != nil {
		t.Fatal(err)
	}
	var sawStatus Status
	var sawCancelled bool
	err := r.StopSession(ctx, "ws/c1", func(ctx context.Context, s *Session) error {
		sawStatus, sawCancelled = s.Status(), s.Context().Err() != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sawStatus != StatusStopping || !sawCancelled {
		t.Errorf("during cleanup: status %s, cancelled %v", sawStatus, sawCancelled)
	}
	if s.Status() != StatusStopped || r.Len() != 0 {
		t.Errorf("after stop: status %s, len %d", s.Status(), r.Len())
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed")
	}
	if !s.Logs().Closed() {
		t.Error("logs not closed")
	}
	if err := r.StopSession(ctx, "ws/c1", nil); err != nil {
		t.Errorf("second stop: %v", err)
	}

	// A foreign caller cannot stop, and learns nothing.
	other := mustCreate(t, r, "ws-b/c2")
	if err := r.StopSession(WithCaller(ctx, Caller{Workspace: "ws-a"}), "ws-b/c2", func(context.Context, *Session) error {
		t.Error("cleanup ran for a foreign caller")
		return nil
	}); err != nil {
		t.Errorf("foreign stop: %v", err)
	}
	if other.Status() != StatusStarting {
		t.Errorf("foreign stop changed status to %s", other.Status())
	}
}

func TestStopSessionCleanupFailureKeepsSession(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(RegistryOptions{})
	s := mustCreate(t, r, "ws/c1")
	boom := errors.New("kill: permission denied")
	err := r.StopSession(ctx, "ws/c1", func(context.Context, *Session) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	info := s.Info()
	if info.Status != StatusFailed || info.Error != "stop failed: kill: permission denied" || r.Len() != 1 {
		t.Errorf("after failed cleanup: %+v len %d", info, r.Len())
	}
	// Retry succeeds: failed -> stopping -> stopped.
	if err := r.StopSession(ctx, "ws/c1", func(context.Context, *Session) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Error("session kept after successful retry")
	}
}

func TestStopDuringStart(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(RegistryOptions{})
	s := mustCreate(t, r, "ws/c1")

	inCleanup := make(chan struct{})
	release := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		stopped <- r.StopSession(ctx, "ws/c1", func(context.Context, *Session) error {
			close(inCleanup)
			<-release
			return nil
		})
	}()
	<-inCleanup
	// The start that is still running must notice and give up.
	if err := s.SetStatus(StatusRunning); !errors.Is(err, ErrInvalidTransition) {
		t.Errorf("start finishing during stop: err = %v", err)
	}
	if s.Context().Err() == nil {
		t.Error("session context not cancelled by the stop")
	}
	// Discard from the failing start leaves the session to the stop.
	cause := errors.New("start aborted")
	if got := r.Discard(s, cause); got != cause {
		t.Errorf("Discard returned %v", got)
	}
	if s.Status() != StatusStopping {
		t.Errorf("Discard interfered with the stop: %s", s.Status())
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if s.Status() != StatusStopped || r.Len() != 0 {
		t.Errorf("final: %s, len %d", s.Status(), r.Len())
	}
}

func TestConcurrentStopsRunCleanupOnce(t *testing.T) {
	ctx := context.Background()
	r := newTestRegistry(RegistryOptions{})
	mustCreate(t, r, "ws/c1")
	var cleanups atomic.Int32
	release := make(chan struct{})
	cleanup := func(context.Context, *Session) error {
		cleanups.Add(1)
		<-release
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() { errs <- r.StopSession(ctx, "ws/c1", cleanup) })
	}
	time.Sleep(20 * time.Millisecond) // let the stops pile up behind the first
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := cleanups.Load(); n != 1 {
		t.Errorf("cleanup ran %d times", n)
	}
}

func TestStopSessionWaitHonoursContext(t *testing.T) {
	r := newTestRegistry(RegistryOptions{})
	mustCreate(t, r, "ws/c1")
	inCleanup := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.StopSession(context.Background(), "ws/c1", func(context.Context, *Session) error {
			close(inCleanup)
			<-release
			return nil
		})
	}()
	<-inCleanup
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.StopSession(ctx, "ws/c1", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting stop err = %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDiscard(t *testing.T) {
	r := newTestRegistry(RegistryOptions{})
	s := mustCreate(t, r, "ws/c1")
	cause := errors.New("download failed: 404")
	if got := r.Discard(s, cause); got != cause {
		t.Errorf("Discard = %v", got)
	}
	if s.Status() != StatusFailed || s.Info().Error != cause.Error() || r.Len() != 0 {
		t.Errorf("after Discard: %+v, len %d", s.Info(), r.Len())
	}
	// A stale Session must not remove a newer session with the same id.
	fresh := mustCreate(t, r, "ws/c1")
	r.Discard(s, cause)
	if got, err := r.Lookup("ws/c1"); err != nil || got != fresh {
		t.Errorf("stale Discard removed the new session: %v", err)
	}
}

func TestRemove(t *testing.T) {
	r := newTestRegistry(RegistryOptions{})
	s := mustCreate(t, r, "ws/c1")
	s.Log(LogStdout, "hello")
	info, ok := r.Remove("ws/c1")
	if !ok || info.SessionID != "ws/c1" {
		t.Fatalf("Remove = %+v, %v", info, ok)
	}
	if _, ok := r.Remove("ws/c1"); ok {
		t.Error("second Remove reported true")
	}
	if s.Context().Err() == nil || !s.Logs().Closed() {
		t.Error("Remove must cancel the context and close the logs")
	}
	if s.Logs().Page(LogQuery{}).Total != 1 {
		t.Error("logs must stay readable after Remove")
	}
	if _, err := r.Lookup("ws/c1"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("Lookup after Remove: %v", err)
	}
}

func TestRegistryConcurrentUse(t *testing.T) {
	r := newTestRegistry(RegistryOptions{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			id := "ws/c" + string(rune('a'+i))
			s, err := r.Create(SessionInfo{SessionID: id}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			s.Log(LogInfo, "x")
			_ = s.SetStatus(StatusRunning)
			_ = r.List("ws")
			if err := r.StopSession(ctx, id, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Errorf("Len = %d", r.Len())
	}
}
