package browser

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/url"
	"strings"
	"text/template"

	"github.com/hypha-go/hypha/worker"
)

//go:embed templates/window.html
var windowHTML string

//go:embed templates/web-worker.html
var webWorkerHTML string

// The app's script is inserted as is (it is the app author's own code, run
// in the app's own page); everything else is encoded: the title is HTML-
// escaped and the config is JSON whose <, > and & are \u-escaped, so no
// manifest value can end the script element.
// The script of a web-worker app sits in a text/plain element, so the same
// rule holds: it is the app's own code.
var (
	windowTmpl    = template.Must(template.New("window").Parse(windowHTML))
	webWorkerTmpl = template.Must(template.New("web-worker").Parse(webWorkerHTML))
)

// pageTypes are the app types whose page compile renders from a template
// (an iframe app is a window app shown in a frame by its host: its page is
// the same).
var pageTypes = map[string]*template.Template{TypeWindow: windowTmpl, TypeIframe: windowTmpl, TypeWebWorker: webWorkerTmpl}

// MaxSourceBytes bounds the app source compile accepts.
const MaxSourceBytes = 4 << 20

// Compile renders a window app's page (index.html) from its script (a
// web-python app's from its Python source), keeps a complete HTML document
// as it is, and checks a web-app's entry_point URL.
func (w *Worker) Compile(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	man := maps.Clone(map[string]any(req.Manifest))
	if man == nil {
		man = map[string]any{}
	}
	switch t := req.Manifest.Type(); t {
	case TypeWebApp:
		entry := req.Manifest.EntryPoint()
		u, err := url.Parse(entry)
		if entry == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return worker.CompileResult{}, fmt.Errorf("%w: a web-app needs an http(s) URL as manifest.entry_point, got %q", worker.ErrInvalidConfig, entry)
		}
		return worker.CompileResult{Manifest: man, Files: req.Files}, nil
	case TypeWindow, TypeIframe, TypeWebWorker, TypeHypha, TypeWebPython:
	default:
		return worker.CompileResult{}, fmt.Errorf("%w: app type %q is not supported by the browser worker (supported: %s)", worker.ErrInvalidConfig, t, strings.Join(SupportedTypes, ", "))
	}

	entry := req.Manifest.EntryPoint()
	source, fromFile := "", ""
	for _, f := range req.Files {
		if entry != "" && (f.Path == entry || f.Name == entry) {
			s, ok := f.Content.(string)
			if !ok || (f.Format != "" && f.Format != "text") {
				return worker.CompileResult{}, fmt.Errorf("%w: %s: the app's source must be a text file", worker.ErrInvalidConfig, entry)
			}
			source, fromFile = s, entry
		}
	}
	if fromFile == "" {
		if s, ok := man["script"].(string); ok {
			source = s
		}
	}
	if strings.TrimSpace(source) == "" {
		return worker.CompileResult{}, fmt.Errorf("%w: the %s app has no script: put it in the file named by manifest.entry_point or in manifest.script", worker.ErrInvalidConfig, req.Manifest.Type())
	}
	if len(source) > MaxSourceBytes {
		return worker.CompileResult{}, fmt.Errorf("%w: the app's source is %d bytes (at most %d)", worker.ErrInvalidConfig, len(source), MaxSourceBytes)
	}
	page := source
	switch {
	case req.Manifest.Type() == TypeWebPython:
		// Always Python (upstream has no HTML form of a web-python app).
		name := fromFile
		if name == "" {
			name = "main.py"
		}
		var err error
		if page, err = RenderPythonPage(man, source, name); err != nil {
			return worker.CompileResult{}, err
		}
	case IsHTMLDocument(source):
	case req.Manifest.Type() == TypeHypha:
		var err error
		if page, err = compilePlugin(man, source); err != nil {
			return worker.CompileResult{}, err
		}
	default:
		var err error
		if page, err = RenderPage(man, source); err != nil {
			return worker.CompileResult{}, err
		}
	}
	delete(man, "script")
	man["entry_point"] = DefaultEntryPoint
	files := make([]worker.File, 0, len(req.Files)+1)
	for _, f := range req.Files {
		if f.Path == fromFile || f.Path == DefaultEntryPoint || (f.Path == "" && (f.Name == fromFile || f.Name == DefaultEntryPoint)) {
			continue
		}
		files = append(files, f)
	}
	files = append(files, worker.File{Path: DefaultEntryPoint, Name: DefaultEntryPoint, Content: page, Format: "text"})
	return worker.CompileResult{Manifest: man, Files: files}, nil
}

// IsHTMLDocument reports whether src is a complete HTML page (kept as is by
// compile) rather than a script.
func IsHTMLDocument(src string) bool {
	s := strings.ToLower(strings.TrimSpace(src))
	return strings.HasPrefix(s, "<!doctype html") || strings.HasPrefix(s, "<html")
}

// RenderPage renders the page of a window, iframe or web-worker app
// (manifest["type"]) around script. The page (or, for a web-worker, a
// module Web Worker it starts) connects back with the JavaScript hypha-rpc
// client served by the app's server and runs script with `api` (the
// connection) in scope; what the script passes to api.export becomes the
// app's "default" service.
func RenderPage(manifest map[string]any, script string) (string, error) {
	return renderPage(manifest, script, "", "")
}

// renderPage is RenderPage with the HTML of the page's body (before the
// script) and its CSS, as an ImJoy-style source's <window> and <style> give
// them (the app author's own markup, inserted as is).
func renderPage(manifest map[string]any, script, body, style string) (string, error) {
	typ, _ := manifest["type"].(string)
	tmpl, ok := pageTypes[typ]
	if !ok {
		return "", fmt.Errorf("%w: app type %q has no page template", worker.ErrInvalidConfig, typ)
	}
	cfg := map[string]any{}
	for _, k := range []string{"name", "type", "version", "description", "requirements"} {
		if v, ok := manifest[k]; ok && v != nil {
			cfg[k] = v
		}
	}
	if r, ok := cfg["requirements"]; ok {
		list, ok := r.([]any)
		if !ok {
			return "", fmt.Errorf("%w: manifest.requirements must be a list of URLs, got %T", worker.ErrInvalidConfig, r)
		}
		for _, v := range list {
			if _, ok := v.(string); !ok {
				return "", fmt.Errorf("%w: manifest.requirements must be a list of URLs, got an element %T", worker.ErrInvalidConfig, v)
			}
		}
	}
	js, err := json.Marshal(cfg) // escapes <, > and & as \u003c…
	if err != nil {
		return "", fmt.Errorf("%w: manifest is not JSON: %w", worker.ErrInvalidConfig, err)
	}
	title, _ := manifest["name"].(string)
	if title == "" {
		title = "Hypha app"
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{"Title": html.EscapeString(title), "Config": string(js), "Script": script, "Body": body, "Style": style})
	if err != nil {
		return "", fmt.Errorf("rendering the %s page: %w", typ, err)
	}
	return b.String(), nil
}
