package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/worker"
)

// ExtTakeScreenshot is the name of the screenshot extension.
const ExtTakeScreenshot = "take_screenshot"

// Extensions are the worker's extra functions.
func (w *Worker) Extensions() []worker.Extension {
	return []worker.Extension{
		{Name: ExtTakeScreenshot, Session: true, Permission: worker.PermissionRead, Params: []string{"session_id", "format?"},
			Description: `A screenshot of the session's page (viewport) as image bytes; format "png" (default) or "jpeg"`,
			Func:        w.TakeScreenshot},
	}
}

// runningTab finds a running session the caller may see and its page.
func (w *Worker) runningTab(ctx context.Context, id string) (*worker.Session, *tab, error) {
	s, err := w.Sessions.LookupFor(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	h, ok := worker.HandleOf[*tab](s)
	if st := s.Status(); !ok || st != worker.StatusRunning {
		info := s.Info()
		why := ""
		if info.Error != "" {
			why = ": " + info.Error
		}
		return nil, nil, fmt.Errorf("%w: session %s is %s%s", worker.ErrInvalidConfig, id, st, why)
	}
	return s, h, nil
}

// Execute evaluates JavaScript in the session's page, as the DevTools
// console does (top-level await allowed; a promise result is awaited) and
// answers the result as JSON values. A throw or a rejected promise is an
// error wrapping ErrScript with the exception's description. In a
// web-python session the script is Python, run in the app's namespace (top-
// level await allowed; the last expression's value is the result, an
// exception an ErrScript error with the traceback).
func (w *Worker) Execute(ctx context.Context, req worker.ExecuteRequest) (any, error) {
	if strings.TrimSpace(req.Script) == "" {
		return nil, fmt.Errorf("%w: execute: the script is empty", worker.ErrInvalidConfig)
	}
	s, h, err := w.runningTab(ctx, req.SessionID)
	if err != nil {
		return nil, err
	}
	timeout := req.Timeout(w.opts.ExecuteTimeout)
	ectx, cancel := context.WithTimeout(h.ctx, timeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	var v any
	if s.Info().AppType == TypeWebPython {
		// A web-python page runs execute's script as Python.
		v, err = executePython(ectx, h, req.Script)
	} else {
		h.op.Lock()
		v, err = chromedp.Run(ectx, evaluate(req.Script))
		h.op.Unlock()
	}
	if err != nil {
		var ex *chromedp.ExceptionError
		switch {
		case errors.Is(err, ErrScript):
			return nil, err
		case errors.As(err, &ex):
			msg := ex.Text
			if ex.Exception != nil && ex.Exception.Description != "" {
				msg = ex.Exception.Description
			}
			return nil, fmt.Errorf("%w: %s", ErrScript, msg)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("execute: %w", ctx.Err())
		case ectx.Err() != nil && s.Context().Err() == nil:
			return nil, fmt.Errorf("%w: the script did not finish within %s", ErrScript, timeout)
		}
		return nil, fmt.Errorf("%w: %w", ErrScript, err)
	}
	return v, nil
}

// TakeScreenshot captures the session's page viewport as PNG or JPEG.
func (w *Worker) TakeScreenshot(ctx context.Context, sessionID, format string) ([]byte, error) {
	var f page.CaptureScreenshotFormat
	switch strings.ToLower(format) {
	case "", "png":
		f = page.CaptureScreenshotFormatPng
	case "jpeg", "jpg":
		f = page.CaptureScreenshotFormatJpeg
	default:
		return nil, fmt.Errorf("%w: screenshot format %q (want png or jpeg)", worker.ErrInvalidConfig, format)
	}
	_, h, err := w.runningTab(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(h.ctx, w.opts.ExecuteTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	h.op.Lock()
	defer h.op.Unlock()
	img, err := chromedp.Run(sctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: f})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	})
	if err != nil {
		return nil, fmt.Errorf("screenshot of session %s: %w", sessionID, err)
	}
	return img, nil
}

// releaseTimeout bounds the release of an evaluation's remote objects.
const releaseTimeout = 5 * time.Second

// evaluate runs script as the DevTools console does (REPL mode: top-level
// await, let redeclaration) and awaits a promise result too: in REPL mode
// the completion value arrives wrapped, so a promise the script evaluates
// to is awaited in a second step, on the page, and only then returned by
// value (JSON).
func evaluate(script string) chromedp.Action[any] {
	return func(ctx context.Context, t *chromedp.Target) (any, error) {
		yes := true
		r, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{
			Expression: script, ReplMode: &yes, AwaitPromise: &yes, UserGesture: &yes, ObjectGroup: "hypha-execute",
		})
		if err != nil {
			return nil, err
		}
		defer func() {
			// Released even when ctx ended, but bounded: a page whose
			// renderer is gone never answers, and an unbounded wait here
			// hung a start for good.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			defer cancel()
			_, _ = cdp.Call(rctx, t, runtime.ReleaseObjectGroup, runtime.ReleaseObjectGroupParams{ObjectGroup: "hypha-execute"})
		}()
		if r.ExceptionDetails != nil {
			return nil, &chromedp.ExceptionError{ExceptionDetails: r.ExceptionDetails}
		}
		obj := r.Result
		if obj.ObjectID != "" {
			c, err := cdp.Call(ctx, t, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
				FunctionDeclaration: "async function () { return await this; }",
				ObjectID:            obj.ObjectID, AwaitPromise: &yes, ReturnByValue: &yes,
			})
			if err != nil {
				return nil, err
			}
			if c.ExceptionDetails != nil {
				return nil, &chromedp.ExceptionError{ExceptionDetails: c.ExceptionDetails}
			}
			obj = c.Result
		}
		if len(obj.Value) == 0 {
			return nil, nil // undefined, or a value JSON cannot hold
		}
		var v any
		if err := json.Unmarshal(obj.Value, &v); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		return v, nil
	}
}
