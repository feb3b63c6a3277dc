package dbmanager

// WithBeforeCommit runs f between writing a version's files and committing
// the version in the catalog: where a successor's takeover hurts most.
func WithBeforeCommit(f func(version uint64)) func(*Config) {
	return func(c *Config) { c.beforeCommit = f }
}

// WithBeforeExport runs f between staging a state and writing its Parquet
// files, while the writer goes on applying.
func WithBeforeExport(f func(appliedSeq uint64)) func(*Config) {
	return func(c *Config) { c.beforeExport = f }
}

// WithAnnounceFault fails the announcement of a batch's outcomes, after
// its commit, when f returns an error.
func WithAnnounceFault(f func() error) func(*Config) {
	return func(c *Config) { c.announceFault = f }
}

// TakePublication takes a place for a publication in b, as another
// model's version would, and returns how to give it back.
func TakePublication(b *Budget) (ok bool, give func()) { return b.tryPublish(), b.published }
