// Command s3get is the baseline of the shared-cache benchmark: it GETs every
// object under a prefix of an S3 bucket in parallel with the same SDK mc
// uses, and prints how many objects and bytes it read and how long it took.
// With -mkbucket it creates the bucket instead (for bench/remote.sh).
//
// Credentials and region come from the standard AWS environment; the
// endpoint from -endpoint or MC_S3_ENDPOINT (path-style addressing).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "s3get:", err)
		os.Exit(1)
	}
}

func run() error {
	endpoint := flag.String("endpoint", os.Getenv("MC_S3_ENDPOINT"), "S3-compatible endpoint")
	bucket := flag.String("bucket", "", "bucket")
	prefix := flag.String("prefix", "", "key prefix")
	parallel := flag.Int("parallel", 32, "concurrent GETs (mc's default for its shared cache)")
	mkbucket := flag.Bool("mkbucket", false, "create the bucket and exit")
	flag.Parse()
	if *bucket == "" {
		return fmt.Errorf("-bucket is required")
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// As mc does: integrity is the SHA-256 of each blob, not the SDK's checksums.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		if *endpoint != "" {
			o.BaseEndpoint = aws.String(*endpoint)
			o.UsePathStyle = true
		}
	})
	if *mkbucket {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket})
		return err
	}
	var keys []string
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: prefix})
	for pages.HasMorePages() {
		p, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, o := range p.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	start := time.Now()
	var bytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	for _, k := range keys {
		g.Go(func() error {
			out, err := client.GetObject(gctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String(k)})
			if err != nil {
				return err
			}
			defer out.Body.Close()
			n, err := io.Copy(io.Discard, out.Body)
			bytes.Add(n)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	wall := time.Since(start)
	fmt.Printf("objects %d bytes %d seconds %.3f\n", len(keys), bytes.Load(), wall.Seconds())
	return nil
}
