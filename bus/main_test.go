package bus_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The router and the requester start goroutines; none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
