package blob

import (
	"context"
	"io"
	"io/fs"
)

// Store is where snapshot files live: a local directory (Dir) or an S3
// bucket (S3). Keys are clean slash-separated paths; a blob, once written,
// is never modified, only replaced whole or deleted. A reader sees a whole
// blob or none.
type Store interface {
	// Put writes r under key and returns the bytes written.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// PutFile moves the local file at src under key; src must not be used
	// afterwards.
	PutFile(ctx context.Context, key, src string) error
	// Open opens the blob at key for reading; a missing key is ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// Link makes the blob at to a copy of the blob at from.
	Link(ctx context.Context, from, to string) error
	// Get reads the whole blob at key.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the names directly under the folder prefix (blobs and
	// folders alike), sorted; a missing folder lists as empty.
	List(ctx context.Context, prefix string) ([]string, error)
	// DeleteAll removes the blob or folder at prefix and everything below.
	DeleteAll(ctx context.Context, prefix string) error
}

// Object is an open blob: readable, seekable (for HTTP Range) and sized.
type Object interface {
	io.ReadSeekCloser
	Stat() (fs.FileInfo, error)
}

var (
	_ Store = (*Dir)(nil)
	_ Store = (*S3)(nil)
)
