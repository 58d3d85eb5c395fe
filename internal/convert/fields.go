package convert

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// field is one settable/encodable struct field, possibly promoted from an
// embedded struct.
type field struct {
	name        string // encoding name: json name, else msgpack name, else Go name
	jsonName    string
	msgpackName string
	goName      string
	index       []int
	typ         reflect.Type
	depth       int
	tagged      bool // name comes from a json or msgpack tag
	omitEmpty   bool
	omitZero    bool
}

// structInfo describes the visible fields of a struct type.
type structInfo struct {
	fields []field        // in declaration (index) order
	exact  map[string]int // key → field, by preference level then depth
	fold   map[string]int // lower-cased key → field
}

var structCache sync.Map // reflect.Type → *structInfo

func cachedStructInfo(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si, _ := structCache.LoadOrStore(t, buildStructInfo(t))
	return si.(*structInfo)
}

// parseTag splits a struct tag value into its name and options.
func parseTag(tag string) (name, opts string) {
	name, opts, _ = strings.Cut(tag, ",")
	return name, opts
}

func hasOpt(opts, opt string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == opt {
			return true
		}
	}
	return false
}

// buildStructInfo collects the fields of t following encoding/json's rules
// for embedded structs: a breadth-first walk where an untagged embedded
// struct (or pointer to struct) is flattened, and for each name the
// shallowest field wins, a tagged one breaking ties; remaining ties drop the
// name.
func buildStructInfo(t reflect.Type) *structInfo {
	type queued struct {
		typ   reflect.Type
		index []int
	}
	var current []queued
	next := []queued{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var all []field

	for depth := 0; len(next) > 0; depth++ {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, q := range current {
			if visited[q.typ] {
				continue
			}
			visited[q.typ] = true
			for i := range q.typ.NumField() {
				sf := q.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						if !sf.IsExported() {
							continue // cannot allocate through it
						}
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				jtag, mtag := sf.Tag.Get("json"), sf.Tag.Get("msgpack")
				if jtag == "-" || mtag == "-" {
					continue
				}
				jname, jopts := parseTag(jtag)
				mname, mopts := parseTag(mtag)
				index := make([]int, len(q.index)+1)
				copy(index, q.index)
				index[len(q.index)] = i

				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if sf.Anonymous && jname == "" && mname == "" && ft.Kind() == reflect.Struct {
					nextCount[ft]++
					if nextCount[ft] == 1 {
						next = append(next, queued{typ: ft, index: index})
					}
					continue
				}
				f := field{
					jsonName:    jname,
					msgpackName: mname,
					goName:      sf.Name,
					index:       index,
					typ:         sf.Type,
					depth:       depth,
					tagged:      jname != "" || mname != "",
					omitEmpty:   hasOpt(jopts, "omitempty") || hasOpt(mopts, "omitempty"),
					omitZero:    hasOpt(jopts, "omitzero") || hasOpt(mopts, "omitzero"),
				}
				f.name = cmp.Or(jname, mname, sf.Name)
				all = append(all, f)
				if count[q.typ] > 1 {
					// The same struct embedded twice at this depth: add a
					// duplicate so that the name is seen as ambiguous.
					all = append(all, f)
				}
			}
		}
	}

	// Dominance by encoding name.
	slices.SortStableFunc(all, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return 0
	})
	var fields []field
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].name == all[i].name {
			j++
		}
		group := all[i:j]
		if len(group) == 1 || group[0].depth != group[1].depth || group[0].tagged != group[1].tagged {
			fields = append(fields, group[0])
		}
		i = j
	}
	slices.SortFunc(fields, func(a, b field) int { return slices.Compare(a.index, b.index) })

	return &structInfo{
		fields: fields,
		exact:  lookupMap(fields, func(s string) string { return s }),
		fold:   lookupMap(fields, strings.ToLower),
	}
}

// lookupMap maps each (normalised) json, msgpack and Go name to its field,
// preferring json over msgpack over Go names, then shallower fields; a key
// claimed equally by two fields is dropped.
func lookupMap(fields []field, norm func(string) string) map[string]int {
	type cand struct {
		field, level, depth int
		tie                 bool
	}
	best := map[string]cand{}
	for fi, f := range fields {
		for level, name := range [3]string{f.jsonName, f.msgpackName, f.goName} {
			if name == "" {
				continue
			}
			k := norm(name)
			c := cand{field: fi, level: level, depth: f.depth}
			old, ok := best[k]
			switch {
			case !ok || level < old.level || (level == old.level && f.depth < old.depth):
				best[k] = c
			case old.field == fi:
				// the same field under two names (json == Go name, say)
			case level == old.level && f.depth == old.depth:
				old.tie = true
				best[k] = old
			}
		}
	}
	m := make(map[string]int, len(best))
	for k, c := range best {
		if !c.tie {
			m[k] = c.field
		}
	}
	return m
}

// lookup finds the field for a key; exact reports an exact (not
// case-insensitive) match.
func (si *structInfo) lookup(key string) (fi int, exact bool) {
	if fi, ok := si.exact[key]; ok {
		return fi, true
	}
	if fi, ok := si.fold[strings.ToLower(key)]; ok {
		return fi, false
	}
	return -1, false
}

// exactKeyIn reports whether m has a key that matches field fi exactly;
// such a key takes precedence over case-insensitive matches.
func (si *structInfo) exactKeyIn(fi int, m map[string]any) bool {
	f := &si.fields[fi]
	for _, name := range [3]string{f.jsonName, f.msgpackName, f.goName} {
		if name == "" {
			continue
		}
		if _, ok := m[name]; ok {
			if j, ok := si.exact[name]; ok && j == fi {
				return true
			}
		}
	}
	return false
}
