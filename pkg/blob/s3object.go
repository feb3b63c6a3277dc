package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Open sizes the blob at key with one HeadObject and returns a reader
// that fetches bytes only when read: http.ServeContent seeks to the end to
// learn the size and back, then reads one range, and that costs one
// ranged GetObject, not a download of the whole blob. Reads use ctx.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, s.wrap(err))
	}
	return &s3Object{
		ctx: ctx, s: s, key: key, objectKey: k,
		etag: aws.ToString(head.ETag),
		info: s3Info{name: path.Base(key), size: aws.ToInt64(head.ContentLength), mod: aws.ToTime(head.LastModified)},
	}, nil
}

// s3Object reads one S3 object from off on. A read opens a GetObject for
// the bytes from off to the end, and further reads go on on that stream;
// a seek elsewhere drops it. The ETag pins the version HeadObject saw, so
// a blob replaced meanwhile fails the read rather than mixing two.
type s3Object struct {
	ctx       context.Context
	s         *S3
	key       string
	objectKey string
	etag      string
	info      s3Info

	off    int64
	body   io.ReadCloser
	closed bool
}

func (o *s3Object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, fs.ErrClosed
	}
	if o.off >= o.info.size {
		return 0, io.EOF
	}
	if o.body == nil {
		in := &s3.GetObjectInput{
			Bucket: aws.String(o.s.bucket),
			Key:    aws.String(o.objectKey),
			Range:  aws.String(fmt.Sprintf("bytes=%d-", o.off)),
		}
		if o.etag != "" {
			in.IfMatch = aws.String(o.etag)
		}
		out, err := o.s.client.GetObject(o.ctx, in)
		if err != nil {
			return 0, fmt.Errorf("read %s at %d: %w", o.key, o.off, o.s.wrap(err))
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if errors.Is(err, io.EOF) {
		o.body.Close()
		o.body = nil
		if o.off < o.info.size {
			err = fmt.Errorf("read %s: object ended at %d of %d bytes: %w", o.key, o.off, o.info.size, io.ErrUnexpectedEOF)
		} else if n > 0 {
			err = nil
		}
	}
	return n, err
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, fs.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.info.size + offset
	default:
		return 0, fmt.Errorf("seek %s: bad whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position %d", o.key, abs)
	}
	if abs != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = abs
	return abs, nil
}

func (o *s3Object) Close() error {
	if o.closed {
		return fs.ErrClosed
	}
	o.closed = true
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}

func (o *s3Object) Stat() (fs.FileInfo, error) { return o.info, nil }

// s3Info is an object's size and modification time as fs.FileInfo.
type s3Info struct {
	name string
	size int64
	mod  time.Time
}

func (i s3Info) Name() string       { return i.name }
func (i s3Info) Size() int64        { return i.size }
func (i s3Info) Mode() fs.FileMode  { return 0o444 }
func (i s3Info) ModTime() time.Time { return i.mod }
func (i s3Info) IsDir() bool        { return false }
func (i s3Info) Sys() any           { return nil }
