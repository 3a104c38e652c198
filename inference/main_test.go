package inference

import (
	"os"
	"testing"

	"github.com/seqconv/seqconv/internal/testrun"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testrun.Cleanup()
	os.Exit(code)
}
