package browser

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/hypha-go/hypha/worker"
	"sigs.k8s.io/yaml"
)

// TypeHypha is an ImJoy-style source: <config>, <script>, <window> and
// <style> sections in one file, parsed at compile.
const TypeHypha = "hypha"

var (
	sectionRE = regexp.MustCompile(`(?is)<(config|script|window|style|docs)(\s[^>]*)?>(.*?)</(?:config|script|window|style|docs)\s*>`)
	attrRE    = regexp.MustCompile(`([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

// pluginTypes are the types a hypha source's config may name (its page is
// rendered with that type's template; "hypha" itself means window).
var pluginTypes = map[string]string{TypeHypha: TypeWindow, TypeWindow: TypeWindow, TypeIframe: TypeIframe, TypeWebWorker: TypeWebWorker, TypeWebPython: TypeWebPython}

// plugin is a parsed ImJoy-style source.
type plugin struct {
	config map[string]any
	script string
	python bool // the script is <script lang="python">
	window string
	style  string
}

// parsePlugin reads the sections of an ImJoy-style source. The config is
// JSON (lang="json", the default) or YAML (lang="yaml", as ImJoy plugins
// often write it; read as the JSON it stands for, so both give the same
// manifest). A script of another language than JavaScript or Python is
// refused.
func parsePlugin(src string) (*plugin, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: hypha app source: %s", worker.ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	p := &plugin{config: map[string]any{}}
	seen := map[string]bool{}
	for _, m := range sectionRE.FindAllStringSubmatch(src, -1) {
		tag, attrs, body := strings.ToLower(m[1]), map[string]string{}, strings.TrimSpace(m[3])
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			attrs[strings.ToLower(a[1])] = a[2] + a[3]
		}
		if seen[tag] {
			continue // the first section of each kind counts, as upstream
		}
		seen[tag] = true
		switch tag {
		case "config":
			switch lang := strings.ToLower(attrs["lang"]); lang {
			case "", "json":
				if body != "" {
					if err := json.Unmarshal([]byte(body), &p.config); err != nil {
						return nil, bad("<config> is not a JSON object: %v", err)
					}
				}
			case "yaml", "yml":
				if body != "" {
					// sigs.k8s.io/yaml refuses YAML that expands aliases
					// without bound; the source's size bounds the rest.
					j, err := yaml.YAMLToJSON([]byte(body))
					if err != nil {
						return nil, bad("<config lang=\"yaml\"> is not valid YAML: %v", err)
					}
					if err := json.Unmarshal(j, &p.config); err != nil || p.config == nil {
						return nil, bad("<config lang=\"yaml\"> is not a mapping of fields")
					}
				}
			default:
				return nil, bad("<config lang=%q> is not supported (json, yaml)", lang)
			}
		case "script":
			switch lang := strings.ToLower(attrs["lang"]); lang {
			case "", "javascript", "js":
				p.script = body
			case "python", "py":
				p.script, p.python = body, true
			default:
				return nil, bad("<script lang=%q> is not supported by the browser worker (javascript, python)", lang)
			}
		case "window":
			p.window = body
		case "style":
			p.style = body
		}
	}
	if strings.TrimSpace(p.script) == "" {
		return nil, bad("no <script> section")
	}
	return p, nil
}

// compilePlugin turns a hypha source into the manifest fields its config
// gives and the page of the type it names.
//
// Upstream's controller splits a hypha source itself before it calls
// compile: the <config> goes into the manifest, the <script> alone into
// main.js (the entry point), and <window> and <style> are dropped. A source
// that does not start with a tag is taken as such a script.
func compilePlugin(man map[string]any, src string) (string, error) {
	var p *plugin
	if strings.HasPrefix(strings.TrimSpace(src), "<") {
		var err error
		if p, err = parsePlugin(src); err != nil {
			return "", err
		}
	} else {
		p = &plugin{config: map[string]any{}, script: src}
	}
	for _, k := range []string{"name", "description", "version", "requirements", "type", "icon", "labels", "env", "flags"} {
		if v, ok := p.config[k]; ok && v != nil {
			man[k] = v
		}
	}
	typ, _ := man["type"].(string)
	tt, ok := pluginTypes[typ]
	if !ok {
		return "", fmt.Errorf("%w: hypha app source: its config's type %q is not supported by the browser worker (window, iframe, web-worker, web-python)", worker.ErrInvalidConfig, typ)
	}
	if p.python != (tt == TypeWebPython) {
		return "", fmt.Errorf("%w: hypha app source: a <script lang=\"python\"> needs the config's type web-python, and web-python needs a Python script (type %q)", worker.ErrInvalidConfig, typ)
	}
	man["type"] = tt
	page := map[string]any{}
	for k, v := range man {
		page[k] = v
	}
	if tt == TypeWebPython {
		return RenderPythonPage(page, p.script, "<script>")
	}
	return renderPage(page, p.script, p.window, p.style)
}
