package condaenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/hypha-go/hypha/internal/localproc"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// ErrBuildFailed is wrapped when a solver, venv or pip exits with an error;
// the error text carries the command's last output lines.
var ErrBuildFailed = errors.New("environment build failed")

// Output bounds for a build command: a solver can print a lot (and a hostile
// package's setup.py anything); lines are cut, the count forwarded is capped,
// and only the last lines are kept for the error.
const (
	maxLineBytes     = 2048
	maxForwarded     = 20000
	tailLines        = 30
	progressTruncMsg = "(further output not shown)"
)

// Progress receives a build's output lines as they are printed.
type Progress func(line string)

// runStreaming runs argv (never through a shell) in its own process group,
// forwards each stdout/stderr line to progress while it runs, and returns
// the last lines. A cancelled ctx kills the whole group; after the command
// ends, whatever it left in its group is killed too, so no solver helper
// outlives the build.
func runStreaming(ctx context.Context, argv []string, env []string, progress Progress) ([]string, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	// Its own group (killed whole on cancel), and SIGKILL when the worker
	// dies (started from localproc's spawner thread, so that the signal
	// means the worker's death): a solver must not go on writing a prefix
	// nobody waits for. Its ready marker is never written, so the next
	// worker rebuilds it.
	cmd.SysProcAttr = solverAttr()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := localproc.StartOnSpawner(cmd); err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	outW.Close()
	errW.Close()
	pgid := cmd.Process.Pid

	var mu sync.Mutex
	var tail []string
	forwarded := 0
	emit := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		tail = append(tail, line)
		if len(tail) > tailLines {
			tail = tail[len(tail)-tailLines:]
		}
		forwarded++
		if progress == nil || forwarded > maxForwarded+1 {
			return
		}
		if forwarded == maxForwarded+1 {
			progress(progressTruncMsg)
			return
		}
		progress(line)
	}
	var readers sync.WaitGroup
	for _, r := range []*os.File{outR, errR} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer r.Close()
			readLines(r, emit)
		}()
	}

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
		werr = ctx.Err()
	}
	// Helpers the command left behind hold the pipes open; they belong to
	// the build and go with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	readers.Wait()

	mu.Lock()
	last := append([]string(nil), tail...)
	mu.Unlock()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return last, fmt.Errorf("%s: %w", argv[0], ctxErr)
	}
	if werr != nil {
		return last, fmt.Errorf("%w: %s: %v%s", ErrBuildFailed, strings.Join(argv, " "), werr, formatTail(last))
	}
	return last, nil
}

func formatTail(lines []string) string {
	if len(lines) == 0 {
		return " (no output)"
	}
	return "; last output lines:\n" + strings.Join(lines, "\n")
}

// readLines splits on \n and \r (progress bars redraw with \r), cuts long
// lines, and skips empty ones.
func readLines(r io.Reader, emit func(string)) {
	br := bufio.NewReaderSize(r, 4096)
	var cur []byte
	flush := func() {
		s := strings.TrimRight(strings.ToValidUTF8(string(cur), "\uFFFD"), " \t")
		cur = cur[:0]
		if s != "" {
			emit(s)
		}
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			flush()
			return
		}
		if c == '\n' || c == '\r' {
			flush()
			continue
		}
		if len(cur) < maxLineBytes {
			cur = append(cur, c)
		} else if len(cur) == maxLineBytes {
			cur = append(cur, "..."...)
		}
	}
}
