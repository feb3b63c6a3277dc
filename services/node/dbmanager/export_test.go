package dbmanager

// WithBeforeCommit runs f between writing a version's files and committing
// the version in the catalog: where a successor's takeover hurts most.
func WithBeforeCommit(f func(version uint64)) func(*Config) {
	return func(c *Config) { c.beforeCommit = f }
}
