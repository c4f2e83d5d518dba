package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// parseURL splits "s3://bucket[/prefix[/]]" into bucket and prefix (without
// leading or trailing slash). Errors start with the URL, with any password
// in it masked.
func parseURL(raw string) (bucket, prefix string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%s: %s (want s3://bucket[/prefix])", redact(raw), why)
	}
	rest, ok := strings.CutPrefix(raw, "s3://")
	if !ok {
		return "", "", bad("not an s3:// URL")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return "", "", bad("credentials belong in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not the URL")
	}
	if bucket == "" {
		return "", "", bad("no bucket")
	}
	if !validBucket(bucket) {
		return "", "", bad(fmt.Sprintf("bucket %q: only letters, digits, '.', '-' and '_' are allowed", bucket))
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return bucket, "", nil
	}
	for seg := range strings.SplitSeq(prefix, "/") {
		switch {
		case seg == "":
			return "", "", bad("empty path segment in prefix")
		case seg == "." || seg == "..":
			return "", "", bad(fmt.Sprintf("prefix segment %q", seg))
		case !validSegment(seg):
			return "", "", bad(fmt.Sprintf("prefix segment %q: only letters, digits and -._~!$'()*+,;=:@ are allowed", seg))
		}
	}
	return bucket, prefix, nil
}

// validBucket accepts S3 bucket names, including legacy ones with
// upper-case letters and underscores; the server judges the rest.
func validBucket(s string) bool {
	for _, c := range s {
		if !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validSegment accepts characters that stand for themselves in a URL path,
// so that the prefix in the URL is the prefix of the keys, byte for byte.
func validSegment(s string) bool {
	for _, c := range s {
		if !isAlnum(c) && !strings.ContainsRune("-._~!$'()*+,;=:@", c) {
			return false
		}
	}
	return true
}

func isAlnum(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// redact masks a password in raw, should someone write credentials into the
// URL.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// checkEndpoint validates an S3-compatible endpoint URL ("" is AWS). It must
// not carry credentials: they would show up in every error message.
func checkEndpoint(ep string) error {
	if ep == "" {
		return nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return errors.New("endpoint: malformed URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("endpoint %s: scheme must be http or https", u.Redacted())
	case u.User != nil:
		return fmt.Errorf("endpoint %s: credentials belong in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not the URL", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("endpoint %s: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("endpoint %s: no query or fragment allowed", u.Redacted())
	}
	return nil
}
