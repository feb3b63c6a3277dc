package blob

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// List returns the names directly under the folder prefix, blobs and
// folders alike, sorted, as Dir does: S3 has no folders, so a folder is a
// common prefix of keys below it. Names starting with "." are left out,
// as Dir leaves out its temporary files.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	k, err := s.objectKey(prefix)
	if err != nil {
		return nil, err
	}
	folder := k + "/"
	var names []string
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(folder), Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, s.wrap(err))
		}
		for _, o := range page.Contents {
			names = appendName(names, strings.TrimPrefix(aws.ToString(o.Key), folder))
		}
		for _, p := range page.CommonPrefixes {
			names = appendName(names, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(p.Prefix), folder), "/"))
		}
	}
	sort.Strings(names)
	return names, nil
}

func appendName(names []string, name string) []string {
	if name == "" || strings.HasPrefix(name, ".") {
		return names
	}
	return append(names, name)
}

// deleteChunk is the most keys one DeleteObjects request takes.
const deleteChunk = 1000

// DeleteAll removes the blob at prefix and every blob below the folder
// prefix. A missing key is no error.
func (s *S3) DeleteAll(ctx context.Context, prefix string) error {
	k, err := s.objectKey(prefix)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}); err != nil {
		return fmt.Errorf("delete %s: %w", prefix, s.wrap(err))
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(k + "/"),
	})
	var batch []types.ObjectIdentifier
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("delete %s: list: %w", prefix, s.wrap(err))
		}
		for _, o := range page.Contents {
			batch = append(batch, types.ObjectIdentifier{Key: o.Key})
			if len(batch) == deleteChunk {
				if err := s.deleteObjects(ctx, prefix, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		return s.deleteObjects(ctx, prefix, batch)
	}
	return nil
}

func (s *S3) deleteObjects(ctx context.Context, prefix string, ids []types.ObjectIdentifier) error {
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", prefix, s.wrap(err))
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("delete %s: %d of %d keys failed, first %s: %s %s",
			prefix, len(out.Errors), len(ids), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
	}
	return nil
}
