package condaenv

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkGetHit measures a cache hit: the locks, the index update and,
// unless trusted, the proof (the environment's python importing ipykernel).
func BenchmarkGetHit(b *testing.B) {
	for _, trust := range []bool{false, true} {
		name := "proof"
		if trust {
			name = "trust-marker"
		}
		b.Run(name, func(b *testing.B) {
			fake, _ := filepath.Abs("testdata/fake-conda")
			c := &Cache{Dir: b.TempDir(), Manager: &Manager{Name: Conda, Path: fake}, Pip: PipOptions{Disabled: true}, TrustReadyMarker: trust}
			spec := Spec{Dependencies: []string{"numpy"}}
			env, err := c.Get(context.Background(), spec, nil)
			if err != nil {
				b.Fatal(err)
			}
			env.Release()
			b.ResetTimer()
			for b.Loop() {
				env, err := c.Get(context.Background(), spec, nil)
				if err != nil {
					b.Fatal(err)
				}
				env.Release()
			}
		})
	}
}

// BenchmarkBuildPipOnly measures a pip-only build with nothing to install
// (venv over /usr/bin/python3, kernel from the system site packages, proof).
func BenchmarkBuildPipOnly(b *testing.B) {
	for b.Loop() {
		c := &Cache{Dir: b.TempDir(), Pip: PipOptions{Pythons: []string{"/usr/bin/python3"}, NoIndex: true, NoUV: true}}
		env, err := c.Get(context.Background(), Spec{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		env.Release()
	}
}
