// Package text holds the small message-formatting helpers that the command and the packages below it
// share, so that each is written once.
package text

import (
	"strconv"
	"strings"
)

// OneLine flattens a (possibly multi-line) message to one line: runs of white space, line breaks
// included, become one space, and leading and trailing white space goes.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Epochs formats a number of epochs: "1 epoch", "2 epochs".
func Epochs(n int) string {
	if n == 1 {
		return "1 epoch"
	}
	return strconv.Itoa(n) + " epochs"
}
