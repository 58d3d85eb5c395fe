package rpc_test

import (
	"crypto/x509"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestTLSOptions: a server behind TLS with a self-signed certificate is
// refused by default (the certificate is verified), and accepted with its
// certificate among Config.RootCAs or with InsecureSkipVerify.
func TestTLSOptions(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	ts.StartTLS()
	t.Cleanup(ts.Close) // after the clients' cleanups
	ctx := testserver.Ctx(t)

	_, err := rpc.Connect(ctx, rpc.Config{ServerURL: ts.URL, NoReconnect: true})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect without the server's CA = %v, want a certificate error", err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	for name, cfg := range map[string]rpc.Config{
		"RootCAs":            {RootCAs: roots},
		"InsecureSkipVerify": {InsecureSkipVerify: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.ServerURL = ts.URL
			c, err := rpc.Connect(ctx, cfg)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Close()
			if v, err := c.Echo(ctx, "over tls"); err != nil || v != "over tls" {
				t.Fatalf("echo = %v, %v", v, err)
			}
		})
	}
}
