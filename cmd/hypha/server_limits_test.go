package main

import (
	"testing"
	"time"

	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
	"github.com/hypha-go/hypha/workers/process"
	"github.com/spf13/pflag"
)

// TestLimitFlags: every limit takes its default from its HYPHA_* variable,
// and a flag overrides it.
func TestLimitFlags(t *testing.T) {
	t.Setenv("HYPHA_MAX_CHUNKED_BYTES_PER_CLIENT", "1234")
	t.Setenv("HYPHA_HTTP_READ_TIMEOUT", "7s")
	t.Setenv("HYPHA_MAX_INSTALL_FILES", "5")
	t.Setenv("HYPHA_LOGIN_FAILURE_WINDOW", "1h")
	var cfg server.Config
	var al apps.Limits
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	addLimitFlags(fs, &cfg, &al)
	if err := fs.Parse([]string{"--max-install-files=9", "--ws-max-malformed-frames=-1", "--max-login-failures=3"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Chunks.PerSenderBytes != 1234 || cfg.HTTPReadTimeout != 7*time.Second || al.MaxFiles != 9 ||
		cfg.MaxMalformedFrames != -1 || cfg.MaxItemsPerWorkspace != 1000 || cfg.HTTPReadHeaderTimeout != 10*time.Second {
		t.Fatalf("config from flags and env: %+v", cfg)
	}
	if l := cfg.Login; l.MaxPasswordFailures != 3 || l.PasswordFailureWindow != time.Hour ||
		l.SessionTTL != server.DefaultLoginSessionTTL || l.MaxSessionsPerCaller != server.DefaultMaxLoginSessionsPerCaller {
		t.Fatalf("login config from flags and env: %+v", l)
	}
}

// TestAppFilesFlags: the process worker's file bounds take their defaults
// from HYPHA_APP_MAX_*, and a flag overrides them.
func TestAppFilesFlags(t *testing.T) {
	t.Setenv("HYPHA_APP_MAX_BYTES", "4096")
	t.Setenv("HYPHA_APP_MAX_FILES", "7")
	var po process.Options
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	addAppFilesFlags(fs, &po)
	if err := fs.Parse([]string{"--app-max-files=9"}); err != nil {
		t.Fatal(err)
	}
	if po.MaxTotalBytes != 4096 || po.MaxFiles != 9 || po.MaxFileBytes != process.DefaultMaxFileBytes {
		t.Fatalf("options from flags and env: %+v", po)
	}
}
