package dbmanager

import "strings"

// splitStatements splits SQL text on the semicolons that end statements,
// skipping those inside quotes, dollar-quoted strings and comments, so that
// each statement can be checked before it runs. Empty statements are dropped.
func splitStatements(text string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		if s := strings.TrimSpace(text[start:end]); s != "" {
			out = append(out, s)
		}
	}
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\'' || c == '"':
			i = skipQuoted(text, i, c)
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(text)
			}
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			if j := strings.Index(text[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(text)
			}
		case c == '$':
			if tag, ok := dollarTag(text[i:]); ok {
				if j := strings.Index(text[i+len(tag):], tag); j >= 0 {
					i += len(tag) + j + len(tag) - 1
				} else {
					i = len(text)
				}
			}
		case c == ';':
			emit(i)
			start = i + 1
		}
	}
	if start < len(text) {
		emit(len(text))
	}
	return out
}

// skipQuoted returns the index of the quote closing the one at i; a doubled
// quote is an escaped one.
func skipQuoted(text string, i int, q byte) int {
	for j := i + 1; j < len(text); j++ {
		if text[j] == q {
			if j+1 < len(text) && text[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return len(text)
}

// dollarTag returns the $tag$ opening a dollar-quoted string at the start of
// s. A $ followed by digits is a parameter, not a tag.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return "", false
}
