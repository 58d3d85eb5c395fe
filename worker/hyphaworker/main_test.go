package hyphaworker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every client, server and worker a test starts must be released.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
