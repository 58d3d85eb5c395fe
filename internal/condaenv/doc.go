// Package condaenv builds and caches the Python environments of the conda
// worker: the spec of an app's manifest (dependencies, pip packages,
// channels) normalised and validated as upstream's conda worker does, the
// environment manager (micromamba, mamba or conda) detected and run without a
// shell with its output streamed live, and a cache of environments keyed by
// the spec's hash that hands out only proven environments, builds each spec
// once across goroutines and worker processes (flock), and evicts by age and
// count without touching an environment in use. Specs that need no conda
// package take a pip-only path: a virtual environment over a local Python.
//
// The tests use a fake conda (testdata/fake-conda, a Python script) because
// no conda can be installed where they run; see docs/workers.md.
package condaenv
