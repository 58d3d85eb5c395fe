package terminal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/worker"
)

// splitCommand splits a command line as a POSIX shell would split words
// (upstream uses Python's shlex.split): blanks separate words, single
// quotes keep everything, double quotes keep everything but \" \\ \$ \`,
// a backslash outside quotes escapes the next character. No expansion.
func splitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash ends the command")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// stagedFiles lists the files to fetch into the working directory: the
// entry point (when given) and manifest.files_to_stage (paths of the app's
// files, strings).
func stagedFiles(cfg worker.Config, max int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p, what string) error {
		c, err := appfiles.CheckPath("file path", p)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
		return nil
	}
	entry := cfg.EntryPoint
	if entry == "" {
		entry = cfg.Manifest.EntryPoint()
	}
	if entry != "" {
		if err := add(entry, "entry point"); err != nil {
			return nil, err
		}
	}
	raw, ok := cfg.Manifest["files_to_stage"]
	if ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: manifest.files_to_stage: want a list of paths, got %T", worker.ErrInvalidConfig, raw)
		}
		for i, item := range list {
			p, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("%w: manifest.files_to_stage[%d]: want a path string, got %T", worker.ErrInvalidConfig, i, item)
			}
			if err := add(p, fmt.Sprintf("manifest.files_to_stage[%d]", i)); err != nil {
				return nil, err
			}
		}
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: %d files to stage, more than the limit of %d", worker.ErrInvalidConfig, len(out), max)
	}
	return out, nil
}
