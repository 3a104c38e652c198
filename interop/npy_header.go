// The header of a .npy file: writing it, and parsing its Python dict literal.

package interop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// maxHeaderLen bounds the header length accepted by ReadNPY (numpy itself refuses headers over 10000 bytes by
// default).
const maxHeaderLen = 1 << 20

// npyHeader returns the complete .npy preamble and header of a (magic, version, length, dict padded with spaces
// and a newline so that the data starts at a multiple of 64 bytes, as numpy writes it). It uses version 1.0
// unless the header needs more than 65535 bytes.
func npyHeader(a *Array) []byte {
	t, _ := npyTypeOf(a.DType)
	var shape strings.Builder
	shape.WriteByte('(')
	for i, d := range a.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.Itoa(d))
	}
	if len(a.Shape) == 1 {
		shape.WriteByte(',')
	}
	shape.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", t.descr(), shape.String())
	const align = 64
	for _, v := range []struct {
		major byte
		lenSz int
	}{{1, 2}, {2, 4}} {
		pre := len(npyMagic) + 2 + v.lenSz
		total := pre + len(dict) + 1
		padded := (total + align - 1) / align * align
		hlen := padded - pre
		if v.lenSz == 2 && hlen > math.MaxUint16 {
			continue
		}
		b := make([]byte, 0, padded)
		b = append(b, npyMagic...)
		b = append(b, v.major, 0)
		if v.lenSz == 2 {
			b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(hlen))
		}
		b = append(b, dict...)
		for len(b) < padded-1 {
			b = append(b, ' ')
		}
		return append(b, '\n')
	}
	panic("unreachable")
}

// header is the parsed header dict of a .npy file.
type header struct {
	descr        string
	fortranOrder bool
	shape        []int
}

// parseHeader parses the Python dict literal of a .npy header: exactly the keys 'descr' (a string),
// 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints), followed by optional whitespace.
func parseHeader(s string) (header, error) {
	p := &pyParser{s: s}
	var h header
	seen := map[string]bool{}
	p.skipSpace()
	if !p.consume('{') {
		return h, errors.New("want a dict starting with '{'")
	}
	for {
		p.skipSpace()
		if p.consume('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("dict key: %w", err)
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		p.skipSpace()
		if !p.consume(':') {
			return h, fmt.Errorf("want ':' after key %q", key)
		}
		p.skipSpace()
		switch key {
		case "descr":
			if p.peek() != '\'' && p.peek() != '"' {
				return h, errors.New("'descr': structured or non-string dtypes are not supported, want a string such as '<f4'")
			}
			if h.descr, err = p.str(); err != nil {
				return h, fmt.Errorf("'descr': %w", err)
			}
		case "fortran_order":
			switch {
			case p.consumeWord("True"):
				h.fortranOrder = true
			case p.consumeWord("False"):
				h.fortranOrder = false
			default:
				return h, errors.New("'fortran_order': want True or False")
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("'shape': %w", err)
			}
		default:
			return h, fmt.Errorf("unexpected key %q, want only 'descr', 'fortran_order' and 'shape'", key)
		}
		p.skipSpace()
		if p.consume('}') {
			break
		}
		if !p.consume(',') {
			return h, fmt.Errorf("want ',' or '}' after the value of %q", key)
		}
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return h, fmt.Errorf("unexpected text %q after the dict", p.s[p.i:])
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("missing key '%s'", k)
		}
	}
	return h, nil
}

// pyParser scans the small subset of Python literals used in .npy headers.
type pyParser struct {
	s string
	i int
}

func (p *pyParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *pyParser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n\x00", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) consume(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) consumeWord(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

// str parses a quoted string without escapes.
func (p *pyParser) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", errors.New("want a quoted string")
	}
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.IndexByte(v, '\\') >= 0 {
		return "", errors.New("escapes in strings are not supported")
	}
	p.i += end + 2
	return v, nil
}

// tuple parses "()", "(3,)", "(3, 4)" or "(3, 4,)"; Python 2 "L" suffixes are accepted.
func (p *pyParser) tuple() ([]int, error) {
	if !p.consume('(') {
		return nil, errors.New("want a tuple")
	}
	dims := []int{}
	for {
		p.skipSpace()
		if p.consume(')') {
			return dims, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if start == p.i {
			return nil, fmt.Errorf("want a non-negative integer at %q", truncate(p.s[start:], 16))
		}
		d, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, fmt.Errorf("dimension %s: %w", p.s[start:p.i], err)
		}
		p.consume('L')
		dims = append(dims, d)
		p.skipSpace()
		if p.consume(')') {
			return dims, nil
		}
		if !p.consume(',') {
			return nil, errors.New("want ',' or ')' in the tuple")
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
