package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/mc-build/mc/cas"
)

// isNotFound reports whether err says the object is absent. HEAD responses
// have no body, so their 404 carries only the status; a missing bucket is
// not a missing object and must surface as an error.
func isNotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// opError wraps err from operation op on the object called name; an absent
// object becomes cas.ErrNotFound.
func opError(op, name string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3 %s %s: %w", op, name, cas.ErrNotFound)
	}
	return fmt.Errorf("s3 %s %s: %w", op, name, err)
}

// count records a failed operation in the stats: deferred by every method
// with its named error result.
func (r *Remote) count(errp *error) {
	err := *errp
	if err == nil || errors.Is(err, cas.ErrNotFound) || errors.Is(err, context.Canceled) {
		return
	}
	r.stats.errors.Add(1)
}
