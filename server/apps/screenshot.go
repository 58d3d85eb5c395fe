package apps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// take_screenshot relays to the session worker's take_screenshot extension
// (the browser worker's: the page as PNG or JPEG bytes), for a caller with
// read permission on the session's workspace, the same rule as get_logs
// and as the extension's own. As for execute, the worker may be a shared
// one in public that users cannot call, so the controller checks the
// caller and relays; the worker gets the session's explicit context, which
// confines the call to the session's workspace.

// screenshotMethod is the worker extension relayed.
const screenshotMethod = "take_screenshot"

// maxScreenshotBytes bounds the image the controller passes on (a page is
// a few hundred KiB; a worker that answers more is broken or hostile).
var maxScreenshotBytes = 32 << 20

// takeScreenshotParams are the parameters of take_screenshot, in order.
var takeScreenshotParams = []string{"session_id", "format"}

// Image signatures of the formats take_screenshot accepts.
var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8, 0xff}
)

func (c *Controller) mTakeScreenshot(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind(screenshotMethod, call, takeScreenshotParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("session_id")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, argErr("take_screenshot() needs session_id")
	}
	// Who may, before what: a refused caller learns nothing of the rest.
	if _, err := c.sessionWorkspace(cl, id, auth.Read, "take a screenshot of "+id); err != nil {
		return nil, err
	}
	format, err := a.str("format")
	if err != nil {
		return nil, err
	}
	var magic []byte
	switch format = strings.ToLower(format); format {
	case "", "png":
		format, magic = "png", pngMagic
	case "jpeg", "jpg":
		format, magic = "jpeg", jpegMagic
	default:
		return nil, argErr("take_screenshot: format must be png or jpeg, got %q", format)
	}
	s, err := c.runningSession(id)
	if err != nil {
		return nil, err
	}
	if !s.worker.Has(screenshotMethod) {
		return nil, fmt.Errorf("%w: the worker of session %s (%s apps) has no take_screenshot", worker.ErrNotSupported, id, s.appType)
	}
	sctx, cancel := context.WithTimeout(ctx, workerCallTimeout)
	defer cancel()
	args := []any{id, format}
	if s.context != nil {
		args = append(args, rpc.Kwargs{"context": s.context})
	}
	v, err := s.worker.Call(sctx, screenshotMethod, args...)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("take_screenshot of %s: no answer from its worker within %s: %w", id, workerCallTimeout, err)
		}
		return nil, err
	}
	img, ok := v.([]byte)
	switch {
	case !ok:
		return nil, fmt.Errorf("take_screenshot of %s: the worker answered %T, not image bytes", id, v)
	case len(img) > maxScreenshotBytes:
		return nil, fmt.Errorf("take_screenshot of %s: the worker answered %d bytes, more than the %d a screenshot may have", id, len(img), maxScreenshotBytes)
	case !bytes.HasPrefix(img, magic):
		return nil, fmt.Errorf("take_screenshot of %s: the worker's answer is not a %s image", id, format)
	}
	return img, nil
}
