package sqlstmt

import "strings"

// Named rewrites each named parameter $name of text, outside quotes,
// dollar-quoted strings and comments, to what replace returns for it, and
// leaves everything else as it is.
func Named(text string, replace func(name string) string) string {
	var out strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		end := i
		switch {
		case c == '\'' || c == '"':
			end = skipQuoted(text, i, c)
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			end = indexFrom(text, i, "\n")
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end = indexFrom(text, i+2, "*/")
		case c == '$':
			if tag, ok := dollarTag(text[i:]); ok {
				end = indexFrom(text, i+len(tag), tag)
			} else if j := identEnd(text, i+1); j > i+1 {
				out.WriteString(replace(text[i+1 : j]))
				i = j - 1
				continue
			}
		}
		end = min(end, len(text)-1)
		out.WriteString(text[i : end+1])
		i = end
	}
	return out.String()
}

// identEnd returns the end of the identifier starting at i: a letter or _
// then letters, digits and _; i when there is none.
func identEnd(text string, i int) int {
	j := i
	for j < len(text) {
		c := text[j]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > i && c >= '0' && c <= '9' {
			j++
			continue
		}
		break
	}
	return j
}
