package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
)

// ConnsOptions of an idle-connections measurement.
type ConnsOptions struct {
	ServerURL   string
	Token       string
	Connections int
	// ServerPID is the process whose resident memory is measured.
	ServerPID int
	// Hold keeps the connections open this long after measuring (to
	// profile the server with them); the result goes to Measured first.
	Hold     time.Duration
	Measured func(ConnsResult)
	Logger   *slog.Logger
}

// ConnsResult reports the server's memory before and after opening the
// connections (and keeping them idle).
type ConnsResult struct {
	Connections  int
	RSSBefore    int64 // bytes
	RSSAfter     int64
	ConnectTime  time.Duration
	PerConnBytes int64
}

func (r ConnsResult) String() string {
	return fmt.Sprintf("connections=%d rss_before=%.1fMB rss_after=%.1fMB per_connection=%.1fKB connect_time=%s",
		r.Connections, float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), float64(r.PerConnBytes)/1024,
		r.ConnectTime.Round(time.Millisecond))
}

// RSS reads a process's resident set size from /proc.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// Conns opens Connections full clients (handshake, built-in registered,
// subscribed) to the server, lets them idle, and measures the server's RSS.
func Conns(ctx context.Context, o ConnsOptions) (ConnsResult, error) {
	before, err := RSS(o.ServerPID)
	if err != nil {
		return ConnsResult{}, err
	}
	start := time.Now()
	clients := make([]*rpc.Client, 0, o.Connections)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range o.Connections {
		c, err := rpc.Connect(ctx, rpc.Config{ServerURL: o.ServerURL, Token: o.Token, Logger: o.Logger,
			NoReconnect: true, ClientID: "idle-" + idgen.New()[:10], PingInterval: time.Hour})
		if err != nil {
			return ConnsResult{}, fmt.Errorf("connection %d: %w", i, err)
		}
		clients = append(clients, c)
	}
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // let the server settle (GC, buffers)
	after, err := RSS(o.ServerPID)
	if err != nil {
		return ConnsResult{}, err
	}
	r := ConnsResult{Connections: o.Connections, RSSBefore: before, RSSAfter: after, ConnectTime: elapsed}
	if o.Connections > 0 {
		r.PerConnBytes = (after - before) / int64(o.Connections)
	}
	if o.Hold > 0 {
		if o.Measured != nil {
			o.Measured(r)
		}
		select {
		case <-time.After(o.Hold):
		case <-ctx.Done():
		}
	}
	return r, nil
}
