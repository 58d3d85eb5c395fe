package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestREADMEListsEveryFlag keeps README's flag table ("Every flag") true:
// every command has a row, and the row names every flag the command
// defines (persistent ones on the command that defines them; hidden,
// internal ones such as --secrets-fd excepted).
func TestREADMEListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := readmeFlagRows(string(b))
	if len(rows) == 0 {
		t.Fatal("README has no flag table (a row per command after \"**Every flag.**\")")
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		path := c.CommandPath()
		row, ok := rows[path]
		var missing []string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !f.Hidden && !strings.Contains(row, "`--"+f.Name+"`") {
				missing = append(missing, "--"+f.Name)
			}
		})
		switch {
		case !ok && (c.Runnable() || len(missing) > 0):
			t.Errorf("README's flag table has no row for %q", path)
		case len(missing) > 0:
			t.Errorf("README's row for %q lacks %s", path, strings.Join(missing, ", "))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}

// readmeFlagRows maps a command path to its row of the flag table. A
// row's first cell names the command in code (placeholders such as PATH
// and text after it ignored); further single-word code spans in that cell
// name siblings ("`hypha apps stop`, `uninstall`").
func readmeFlagRows(readme string) map[string]string {
	_, table, ok := strings.Cut(readme, "**Every flag.**")
	if !ok {
		return nil
	}
	span := regexp.MustCompile("`([^`]*)`")
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `hypha") {
			if len(rows) > 0 && !strings.HasPrefix(line, "|") {
				break // the end of the table
			}
			continue
		}
		cells := strings.SplitN(line, "|", 3)
		spans := span.FindAllStringSubmatch(cells[1], -1)
		var words []string
		for _, w := range strings.Fields(spans[0][1]) {
			if strings.ToLower(w) != w || strings.HasPrefix(w, "[") {
				break
			}
			words = append(words, w)
		}
		key := strings.Join(words, " ")
		rows[key] = line
		parent := strings.Join(words[:len(words)-1], " ")
		for _, s := range spans[1:] {
			if !strings.Contains(s[1], " ") {
				rows[parent+" "+s[1]] = line
			}
		}
	}
	return rows
}
