package readguard

import "regexp"

// Path is what ScrubPaths puts where a path was.
const Path = "<path>"

var (
	// quotedPath is an absolute or home-relative path in quotes, as DuckDB
	// quotes file names in its messages: it may hold spaces.
	quotedPath = regexp.MustCompile(`"(?:/|~/)[^"]*"|'(?:/|~/)[^']*'`)
	// barePath is one that starts a word: after a space, a bracket, = or
	// the start, so that a/b or 1/2 stay. A colon or a full stop after it
	// ends the sentence, not the path.
	barePath = regexp.MustCompile(`(^|[\s(\[=,])(?:/|~/)(?:[^\s"'(),;\[\]]*[^\s"'(),;\[\]:.])?`)
)

// ScrubPaths replaces every absolute (or ~/) file system path in a message
// with <path>: a reader is told what failed, never where the server keeps
// its files.
func ScrubPaths(msg string) string {
	msg = quotedPath.ReplaceAllStringFunc(msg, func(s string) string { return s[:1] + Path + s[len(s)-1:] })
	return barePath.ReplaceAllString(msg, "${1}"+Path)
}
