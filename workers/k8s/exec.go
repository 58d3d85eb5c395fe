package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// ExecRequest is one command run in a session's container.
type ExecRequest struct {
	Namespace, Pod, Container string
	Command                   []string
	Stdout, Stderr            io.Writer
}

// Executor runs a command in a pod's container and returns its exit code.
// An exit code other than 0 is not an error; err reports that the command
// could not be run or its streams broke. RemoteExecutor is the production
// one (the pods/exec API); tests use a fake, since no cluster runs here.
type Executor interface {
	Exec(ctx context.Context, req ExecRequest) (exitCode int, err error)
}

// RemoteExecutor runs commands through the API server's pods/exec
// subresource with client-go's remotecommand: the WebSocket protocol, and
// SPDY for API servers that do not upgrade to it. Client builds the
// pods/exec URL; Config carries the credentials for the stream.
type RemoteExecutor struct {
	Config *rest.Config
	Client *RESTClient
}

// Exec runs req.Command until it ends or ctx is done.
func (e RemoteExecutor) Exec(ctx context.Context, r ExecRequest) (int, error) {
	u := e.Client.ExecURL(r.Namespace, r.Pod, &corev1.PodExecOptions{
		Container: r.Container, Command: r.Command, Stdout: true, Stderr: true,
	})
	spdy, err := remotecommand.NewSPDYExecutor(e.Config, "POST", u)
	if err != nil {
		return 0, fmt.Errorf("exec in pod %s: %w", r.Pod, err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(e.Config, "GET", u.String())
	if err != nil {
		return 0, fmt.Errorf("exec in pod %s: %w", r.Pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return 0, fmt.Errorf("exec in pod %s: %w", r.Pod, err)
	}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: r.Stdout, Stderr: r.Stderr})
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code, nil
	}
	if err != nil {
		return 0, fmt.Errorf("exec in pod %s: %w", r.Pod, err)
	}
	return 0, nil
}

// cappedBuffer keeps the first max bytes written and counts the rest, so a
// command printing without end cannot exhaust the worker's memory.
type cappedBuffer struct {
	buf     []byte
	max     int
	dropped int64
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if room >= len(p) {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		b.buf = append(b.buf, p[:room]...)
	}
	b.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	if b.dropped == 0 {
		return string(b.buf)
	}
	return string(b.buf) + fmt.Sprintf("\n… [%d bytes dropped]", b.dropped)
}
