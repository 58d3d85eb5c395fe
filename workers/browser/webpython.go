package browser

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strings"
	"text/template"

	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/worker"
)

// TypeWebPython is an app written in Python, run in the page by Pyodide.
const TypeWebPython = "web-python"

//go:embed templates/web-python.html
var webPythonHTML string

// bridgeSource is the Python module hypha_rpc the web-python page installs
// inside Pyodide: the hypha-rpc API for Python, over the page's JavaScript
// client.
//
//go:embed templates/hypha_rpc.py
var bridgeSource string

// Every value but the title goes into the page as JSON (with <, > and &
// \u-escaped), the app's Python source included, so nothing can end the
// page's script element.
var webPythonTmpl = template.Must(template.New("web-python").Parse(webPythonHTML))

// ErrRequirementOffline: a web-python app asks for a package that cannot be
// had without a network.
var ErrRequirementOffline = fmt.Errorf("%w: requirement not available offline", worker.ErrInvalidConfig)

// offlineRequirements are what a web-python app may list in requirements:
// the bridge stands in for the hypha-rpc package.
var offlineRequirements = map[string]bool{"hypha-rpc": true}

// requirementName is a pip requirement's normalised project name.
func requirementName(req string) string {
	s := strings.TrimSpace(req)
	if i := strings.IndexAny(s, "<>=!~;[ @"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// checkPythonRequirements refuses requirements that cannot be met offline,
// naming all of them.
func checkPythonRequirements(man map[string]any) error {
	r, ok := man["requirements"]
	if !ok || r == nil {
		return nil
	}
	list, ok := r.([]any)
	if !ok {
		return fmt.Errorf("%w: manifest.requirements must be a list of package names, got %T", worker.ErrInvalidConfig, r)
	}
	var missing []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: manifest.requirements must be a list of package names, got an element %T", worker.ErrInvalidConfig, v)
		}
		if !offlineRequirements[requirementName(s)] {
			missing = append(missing, fmt.Sprintf("%q", s))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (web-python apps run offline: they can import the Python standard library shipped with Pyodide and hypha_rpc, nothing is installed)",
			ErrRequirementOffline, strings.Join(missing, ", "))
	}
	return nil
}

// RenderPythonPage renders a web-python app's page around its Python source
// (filename is what tracebacks call it).
func RenderPythonPage(manifest map[string]any, source, filename string) (string, error) {
	if err := checkPythonRequirements(manifest); err != nil {
		return "", err
	}
	cfg := map[string]any{}
	for _, k := range []string{"name", "type", "version", "description", "requirements"} {
		if v, ok := manifest[k]; ok && v != nil {
			cfg[k] = v
		}
	}
	if filename == "" {
		filename = "main.py"
	}
	enc := func(v any) (string, error) {
		b, err := json.Marshal(v) // escapes <, > and & as \u003c…
		if err != nil {
			return "", fmt.Errorf("%w: manifest is not JSON: %w", worker.ErrInvalidConfig, err)
		}
		return string(b), nil
	}
	data := map[string]any{}
	for k, v := range map[string]any{"Config": cfg, "Bridge": bridgeSource, "Script": source, "Filename": filename} {
		s, err := enc(v)
		if err != nil {
			return "", err
		}
		data[k] = s
	}
	title, _ := manifest["name"].(string)
	if title == "" {
		title = "Hypha app"
	}
	data["Title"] = html.EscapeString(title)
	var b bytes.Buffer
	if err := webPythonTmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering the web-python page: %w", err)
	}
	return b.String(), nil
}

// maxTraceback bounds the traceback a failed start reports.
const maxTraceback = 8 << 10

// waitPython waits until the web-python page has loaded Pyodide, connected
// and run the app's script (with the exports it started). The script's
// exception, or what else failed, comes back as an error with ErrScript.
func waitPython(ctx context.Context, h *tab) error {
	h.op.Lock()
	defer h.op.Unlock()
	v, err := chromedp.Run(ctx, evaluate(`(async () => {
  const p = window.__hyphaWebPython;
  if (!p) return "this page is not a web-python page (no Python runtime was set up)";
  try { await p.ready; return null; } catch (e) { return String(e && e.message || e); }
})()`))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: the web-python app did not start in time (Pyodide loading, connecting, or the script's top level still running): %w", ErrScript, err)
		}
		return fmt.Errorf("waiting for the Python runtime: %w", err)
	}
	if msg, ok := v.(string); ok {
		return fmt.Errorf("%w: the web-python app failed to start:\n%s", ErrScript, truncate(msg, maxTraceback))
	}
	return nil
}

// executePython runs Python source in a web-python session's page, in the
// app's namespace, and decodes the JSON answer.
func executePython(ctx context.Context, h *tab, source string) (any, error) {
	arg, _ := json.Marshal(source)
	h.op.Lock()
	v, err := chromedp.Run(ctx, evaluate("window.__hyphaWebPython.execute("+string(arg)+")"))
	h.op.Unlock()
	if err != nil {
		return nil, err
	}
	text, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%w: the page answered %T, not the Python result", ErrScript, v)
	}
	var res struct {
		Value any     `json:"value"`
		Error *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		return nil, fmt.Errorf("%w: decoding the Python result: %w", ErrScript, err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("%w: %s", ErrScript, strings.TrimRight(*res.Error, "\n"))
	}
	return res.Value, nil
}
