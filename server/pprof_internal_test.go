package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestHostilePprofFromNetwork: with --pprof, the profiler answers clients
// on the server's machine only.
func TestHostilePprofFromNetwork(t *testing.T) {
	served := 0
	h := loopbackOnly(func(http.ResponseWriter, *http.Request) { served++ })
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:5000", http.StatusOK},
		{"[::1]:5000", http.StatusOK},
		{"203.0.113.7:5000", http.StatusForbidden},
		{"[2001:db8::1]:5000", http.StatusForbidden},
		{"garbage", http.StatusForbidden},
	} {
		served = 0
		r := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		h(w, r)
		if w.Code != tc.want || (tc.want == http.StatusOK) != (served == 1) {
			t.Errorf("%s: status %d, served %d; want %d", tc.remote, w.Code, served, tc.want)
		}
	}
}
