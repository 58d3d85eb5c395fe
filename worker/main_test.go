package worker

import (
	"testing"

	"go.uber.org/goleak"
)

// Reporters own a goroutine; every test must close what it starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
